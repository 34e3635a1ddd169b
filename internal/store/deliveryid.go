package store

import (
	"crypto/rand"
	"time"
)

// crockford is Crockford's base32 alphabet, which is in ASCII order: ids
// that encode larger numbers sort later, bytewise.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewDeliveryID returns a new Delivery.ID: "msg_" and 26 characters of
// Crockford base32, 10 of the time in milliseconds and 16 random (80 bits),
// the layout of a ULID. Stores call it when they enqueue. The ids of one
// process sort by the time they were made, so a store's index of them grows
// at one end, as it does for a sequence, instead of taking writes on
// random pages; the random part keeps them unique across nodes.
func NewDeliveryID() string {
	var b [4 + 26]byte
	copy(b[:], "msg_")
	ms := uint64(time.Now().UnixMilli())
	for i := 4 + 9; i >= 4; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [10]byte
	_, _ = rand.Read(r[:]) // never fails: crypto/rand.Read crashes the program instead
	// Two 40-bit halves, 8 characters each.
	for half := range 2 {
		var v uint64
		for _, x := range r[half*5 : half*5+5] {
			v = v<<8 | uint64(x)
		}
		for i := 7; i >= 0; i-- {
			b[14+half*8+i] = crockford[v&31]
			v >>= 5
		}
	}
	return string(b[:])
}
