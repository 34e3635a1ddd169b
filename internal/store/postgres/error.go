package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/store"
)

// ErrCommitUnknown means the connection was lost while a publish batch
// committed, and the store could not find out in time whether the commit
// went through: the messages may be stored (with their ids, and with
// whatever BeforeCommit sent) or not. Publish never reports success in
// that case; a caller that retries may store a message twice.
var ErrCommitUnknown = errors.New("commit outcome unknown: the connection was lost during COMMIT")

// SQLSTATE codes the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
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
	for _, keep := range []error{context.Canceled, context.DeadlineExceeded, store.ErrNotFound, store.ErrConflict, store.ErrClosed, ErrCommitUnknown} {
		if errors.Is(err, keep) {
			return err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case codeUniqueViolation:
			return fmt.Errorf("%w: %s", store.ErrConflict, pe.Error())
		case codeForeignKeyViolation:
			return fmt.Errorf("%w: %s", store.ErrNotFound, pe.Error())
		}
	}
	return errors.New(err.Error())
}

// retryable reports whether err says Postgres rolled the transaction back
// so that it could go on (a serialization failure or a deadlock), and so
// running it again is safe and likely to work.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}
