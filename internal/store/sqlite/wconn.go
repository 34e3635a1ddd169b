package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"modernc.org/sqlite"
)

// The writer's statements, by index into writerSQL and wconn.stmts.
const (
	wBegin = iota
	wCommit
	wRollback
	wSavepoint
	wRelease
	wRollbackTo
	wHead
	wInsert
	wInsertMany
	wGetKey
	wPutKey
	wInsertDelivery
	wStmts // how many there are
)

// writerSQL is the SQL the writer runs, each statement prepared once on the
// write connection (see wconn). BEGIN IMMEDIATE takes the write lock at
// once, as the write pool's _txlock does for other transactions.
var writerSQL = [wStmts]string{
	wBegin:      `BEGIN IMMEDIATE`,
	wCommit:     `COMMIT`,
	wRollback:   `ROLLBACK`,
	wSavepoint:  `SAVEPOINT unit`,
	wRelease:    `RELEASE unit`,
	wRollbackTo: `ROLLBACK TO unit`,
	// head reads a topic: args app id, topic name; returns the topic's row
	// id, its last id and its enabled triggers as a JSON array.
	wHead: headQuery,
	// insert stores one message: args topic row id, id, body, published_at.
	// Its parameters are anonymous, unlike the others': the driver asks
	// a numbered parameter its name, as a new Go string, at every bind,
	// and this statement runs once per message.
	wInsert: insertQuery + `(?, ?, ?, ?)`,
	// insertMany is insert for insertMany messages at once.
	wInsertMany: insertQuery + strings.Repeat(`(?, ?, ?, ?), `, insertMany-1) + `(?, ?, ?, ?)`,
	// getKey reads the publish that used a key after a cutoff: args app id,
	// key, cutoff; returns topic name, message id, published_at and body
	// (NULL once pruned).
	wGetKey: getIdempotencyKeyQuery,
	// putKey records a publish's key: args app id, key, topic row id,
	// message id, stamp.
	wPutKey: putIdempotencyKeyQuery,
	// insertDelivery enqueues a delivery: args id, trigger id, app id, topic
	// name, message id, body, published_at.
	wInsertDelivery: insertDeliveryQuery,
}

// insertQuery is the start of wInsert and wInsertMany.
const insertQuery = `INSERT INTO messages (topic_id, id, body, published_at) VALUES `

// insertMany is how many messages wInsertMany inserts. A statement costs
// about as much again as the B-tree work of the row it inserts, so that a
// batch publish's messages go in by the insertMany.
const insertMany = 16

// driverStmt is what the writer needs of a statement of the driver.
type driverStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// wconn is the write connection as the writer uses it: the driver's
// connection itself, below database/sql, with writerSQL prepared on it once.
//
// database/sql would, per batch, prepare the BEGIN again (the driver does
// for every transaction), allocate a Stmt per statement for the
// transaction, and lock, convert the arguments and check for a bad
// connection around every statement; the writer needs none of it. It still
// borrows the connection from the write pool (sql.Conn.Raw) for each batch,
// so the other writes (apps, topics, triggers, the outbox, Prune) take turns
// with the batches as before; and it runs with a context that never ends,
// so the driver starts no goroutine to watch one.
//
// A wconn belongs to the writer goroutine.
type wconn struct {
	// dc is the driver connection the statements were prepared on. The pool
	// has one connection, but may replace it (after a bad one); the
	// statements are then prepared again on the new one.
	dc    driverConn
	stmts [wStmts]driverStmt
	// args and row are reused from statement to statement.
	args []driver.NamedValue
	row  [4]driver.Value
}

// driverConn is what the writer needs of the driver's connection: to
// prepare its statements, and its file control for its data version (see
// heads).
type driverConn interface {
	driver.Conn
	driver.ConnPrepareContext
	sqlite.FileControl
}

// ready prepares the statements on dc, unless they are prepared on it
// already. Statements of a former connection are dropped without closing:
// the pool closed that connection, and with it the memory a close would
// touch.
func (wc *wconn) ready(ctx context.Context, dc any) error {
	if dc == wc.dc && wc.dc != nil {
		return nil
	}
	wc.dc, wc.stmts = nil, [wStmts]driverStmt{}
	conn, ok := dc.(driverConn)
	if !ok {
		return fmt.Errorf("driver connection %T cannot prepare with a context or give its data version", dc)
	}
	var stmts [wStmts]driverStmt
	for i, query := range writerSQL {
		st, err := conn.PrepareContext(ctx, query)
		if err == nil {
			var ok bool
			if stmts[i], ok = st.(driverStmt); !ok {
				err = errors.Join(fmt.Errorf("driver statement %T cannot run with a context", st), st.Close())
			}
		}
		if err != nil {
			return errors.Join(fmt.Errorf("prepare %q: %w", query, err), closeStmts(stmts[:i]))
		}
	}
	wc.dc, wc.stmts = conn, stmts
	return nil
}

// dataVersion returns the connection's data version: a number that moves
// with every commit to the database, from this connection or any other
// (SQLITE_FCNTL_DATA_VERSION). Changes from other connections show from
// the start of this connection's next transaction.
func (wc *wconn) dataVersion() (uint32, error) {
	v, err := wc.dc.FileControlDataVersion("main")
	if err != nil {
		return 0, fmt.Errorf("data version: %w", err)
	}
	return v, nil
}

// close closes the statements, if they were prepared on dc, the connection
// they belong to.
func (wc *wconn) close(dc any) error {
	if dc != wc.dc || wc.dc == nil {
		return nil
	}
	err := closeStmts(wc.stmts[:])
	wc.dc, wc.stmts = nil, [wStmts]driverStmt{}
	return err
}

// closeStmts closes the statements of stmts that are not nil.
func closeStmts(stmts []driverStmt) error {
	var errs []error
	for _, st := range stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// bind sets wc.args to args, numbered from 1 (the statements use ?N).
func (wc *wconn) bind(args []any) []driver.NamedValue {
	wc.args = wc.args[:0]
	for i, v := range args {
		wc.args = append(wc.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return wc.args
}

// exec runs statement i with args.
func (wc *wconn) exec(ctx context.Context, i int, args ...any) error {
	_, err := wc.stmts[i].ExecContext(ctx, wc.bind(args))
	return err
}

// queryRow runs statement i with args and returns its first row, or
// ok false when it has none. The row is valid until the next queryRow.
func (wc *wconn) queryRow(ctx context.Context, i int, args ...any) (_ []driver.Value, ok bool, err error) {
	rows, err := wc.stmts[i].QueryContext(ctx, wc.bind(args))
	if err != nil {
		return nil, false, err
	}
	// Closing resets the statement, which must not stay active: COMMIT
	// fails while a statement is.
	defer func() { err = errors.Join(err, rows.Close()) }()
	row := wc.row[:len(rows.Columns())]
	switch err := rows.Next(row); {
	case errors.Is(err, io.EOF):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return row, true, nil
}

// tx runs fn in a write transaction. It reports, next to the error, whether
// the connection must be given up: when a ROLLBACK after a failure fails
// too, the connection may still be in the transaction, and must not go back
// to the pool.
func (wc *wconn) tx(ctx context.Context, fn func() error) (err error, bad bool) {
	if err := wc.exec(ctx, wBegin); err != nil {
		return err, false
	}
	if err = fn(); err == nil {
		if err = wc.exec(ctx, wCommit); err == nil {
			return nil, false
		}
	}
	// A failed COMMIT (SQLITE_BUSY, say) leaves the transaction open, as a
	// failed statement does; some errors (SQLITE_FULL, SQLITE_IOERR) end it
	// already, and then the ROLLBACK fails, which is the case we cannot
	// tell from a connection in trouble.
	if rbErr := wc.exec(ctx, wRollback); rbErr != nil {
		return fmt.Errorf("%w (rollback: %w)", err, rbErr), true
	}
	return err, false
}

// int64Of returns v, a driver value of an INTEGER column, as an int64.
func int64Of(v driver.Value) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("column is %T, not an integer", v)
	}
	return n, nil
}

// bytesOf returns v, a driver value of a TEXT, BLOB or NULL column, as
// bytes: nil for NULL (and for an empty BLOB, as the driver returns it).
func bytesOf(v driver.Value) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	}
	return nil, fmt.Errorf("column is %T, not text or a blob", v)
}
