package limit

import (
	"errors"

	"github.com/heraldhq/herald/internal/store"
)

// CreateWithin creates something an app holds a limited number of (a
// topic, a trigger) where counting and creating are one step of the store:
// creates that race, on this node or others, cannot pass the limit
// together, as a count read before the create would let them.
//
// max reads the app's limit in force, which create is given; create
// returns store.ErrLimitReached (wrapped or not) when the app is at it.
// The limit read may be older than the create that refuses: a refusal
// that check (given the limit as the count the app holds) does not
// confirm, the limit having been raised since, is tried again, three
// times in all. Errors are returned as max, create and check return them.
func CreateWithin(max func() (int, error), create func(max int) error, check func(have int) error) error {
	for attempt := 1; ; attempt++ {
		n, err := max()
		if err != nil {
			return err
		}
		err = create(n)
		if !errors.Is(err, store.ErrLimitReached) {
			return err
		}
		if refused := check(n); refused != nil {
			return refused
		}
		if attempt == 3 {
			return err
		}
	}
}
