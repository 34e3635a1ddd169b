-- Install-wide settings every node must agree on, such as the generated
-- admin token (a single node keeps it in its data directory instead).
CREATE TABLE herald.settings (
	name  text COLLATE "C" PRIMARY KEY,
	value text NOT NULL
);
