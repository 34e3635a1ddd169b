package sqlite

import (
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/heraldhq/herald/internal/store"
)

// interpretError translates an error of database/sql or the driver into the
// store's terms: no rows is store.ErrNotFound, a uniqueness violation is
// store.ErrConflict, a missing parent row (foreign key) is store.ErrNotFound.
// Other driver errors keep their message but not their type, so that no
// caller comes to depend on the driver. Context errors pass unchanged.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return fmt.Errorf("%w: %s", store.ErrConflict, se.Error())
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w: %s", store.ErrNotFound, se.Error())
	}
	// Primary result codes (the low byte of an extended one) of failures
	// that are the disk's or the moment's, not the statement's.
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %s", store.ErrFull, se.Error())
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL:
		return fmt.Errorf("%w: %s", store.ErrUnavailable, se.Error())
	}
	return errors.New(err.Error())
}
