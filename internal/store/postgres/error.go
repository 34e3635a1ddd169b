package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/store"
)

// ErrCommitUnknown means the connection was lost while a publish batch
// committed, and the store could not find out in time whether the commit
// went through: the messages may be stored (with their ids, and with
// whatever the BeforeCommit hooks sent) or not. Publish never reports success in
// that case; a caller that retries may store a message twice.
//
// It is store.ErrCommitUnknown, so callers above the store contract see it.
var ErrCommitUnknown = store.ErrCommitUnknown

// SQLSTATE codes the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeDiskFull             = "53100"
)

// interpretError translates an error of pgx into the store's terms: no rows
// is store.ErrNotFound, a uniqueness violation is store.ErrConflict, a
// missing parent row (foreign key) is store.ErrNotFound. Other driver
// errors keep their message but not their type, so that no caller comes to
// depend on the driver. Context errors, the store's sentinels and
// ErrCommitUnknown pass unchanged.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	for _, keep := range []error{context.Canceled, context.DeadlineExceeded, store.ErrNotFound, store.ErrConflict, store.ErrClosed, store.ErrLimitReached, store.ErrTopicTriggersFull, ErrCommitUnknown} {
		if errors.Is(err, keep) {
			return err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == codeUniqueViolation:
			return fmt.Errorf("%w: %s", store.ErrConflict, pe.Error())
		case pe.Code == codeForeignKeyViolation:
			return fmt.Errorf("%w: %s", store.ErrNotFound, pe.Error())
		case pe.Code == codeDiskFull:
			return fmt.Errorf("%w: %s", store.ErrFull, pe.Error())
		case unavailableCode(pe.Code):
			return fmt.Errorf("%w: %s", store.ErrUnavailable, pe.Error())
		}
		return errors.New(err.Error())
	}
	if lostConnection(err) {
		return fmt.Errorf("%w: %s", store.ErrUnavailable, err.Error())
	}
	return errors.New(err.Error())
}

// unavailableCode reports whether a SQLSTATE says the database could not
// do the work now but may later: connection exceptions (class 08),
// insufficient resources (53), an operator intervention such as a
// shutdown or a restart (57P01 to 57P03), a serialization failure or a
// deadlock that outlived the store's own retries (40001, 40P01).
func unavailableCode(code string) bool {
	switch {
	case len(code) == 5 && (code[:2] == "08" || code[:2] == "53"):
		return true
	case code == "57P01", code == "57P02", code == "57P03":
		return true
	case code == codeSerializationFailure, code == codeDeadlockDetected:
		return true
	}
	return false
}

// lostConnection reports whether err is the driver failing to reach the
// database or losing the connection, as opposed to the database refusing
// the statement.
func lostConnection(err error) bool {
	var (
		ce *pgconn.ConnectError
		ne net.Error
	)
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// retryable reports whether err says Postgres rolled the transaction back
// so that it could go on (a serialization failure or a deadlock), and so
// running it again is safe and likely to work.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}
