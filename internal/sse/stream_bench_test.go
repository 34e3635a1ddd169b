package sse

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/event"
)

// discard is a sink and directWriter that takes every write at once.
type discard struct{ bytes int }

func (d *discard) write(b []byte, _ time.Time) error { d.bytes += len(b); return nil }
func (d *discard) close()                            {}
func (d *discard) tryWrite(b []byte) (int, error)    { d.bytes += len(b); return len(b), nil }
func (d *discard) clearDeadline() error              { return nil }

// BenchmarkFanOut measures the fan-out path alone, without sockets or
// goroutine switches: one publish to a topic with n direct streams, which
// queues each on the fan-out's run queue, then a worker's turns until
// the queue is empty (worker.take and worker.serve: per stream receive,
// append the shared frame, one write). The events are made and encoded before the timer starts, as
// pubsub and the first stream do once per publish, so allocs/op is the
// allocations of n deliveries and must stay 0.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			mem, err := broadcast.NewMemory(broadcast.MemoryOptions{})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h := New(mem, nil, Options{})
			// No worker goroutine is started: the benchmark's goroutine
			// is the one worker, parked on the idle list as start leaves
			// it, and runs its loop (worker.run) inline.
			w := &worker{f: &h.fan, wake: make(chan struct{}, 1)}
			h.fan.idle = []*worker{w}
			streams := make([]*stream, n)
			for i := range streams {
				d := &discard{}
				s := &stream{
					h: h, ctx: ctx, out: d, dw: d, fan: &h.fan, app: "app", topics: []string{"t"},
					wake: make(chan struct{}, 1), subs: make([]*broadcast.Subscription, 1), pos: make([]uint64, 1),
					live: 1, evs: make([]*broadcast.Event, 0, 8), buf: make([]byte, 0, 1024),
				}
				s.direct.Store(true)
				if s.subs[0], err = mem.Subscribe(ctx, "app", "t", s.notify); err != nil {
					b.Fatal(err)
				}
				streams[i] = s
			}
			msg := json.RawMessage(`{"seq":1,"pad":"` + string(make([]byte, 100)) + `"}`)
			for i := range msg {
				if msg[i] == 0 {
					msg[i] = 'x'
				}
			}
			evs := make([]*broadcast.Event, b.N)
			for i := range evs {
				evs[i] = &broadcast.Event{App: "app", Topic: "t", ID: uint64(i + 1), Message: msg, PublishedAt: time.Now()}
				evs[i].Frame(event.EncodeFrame)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				mem.Publish(ctx, evs[i])
				<-w.wake
				for {
					n, _ := w.take()
					if n < 0 {
						break
					}
					w.serve(n)
				}
			}
			b.StopTimer()
			for _, s := range streams {
				if !s.direct.Load() {
					b.Fatal("stream parked")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			if got := streams[0].pos[0]; got != uint64(b.N) {
				b.Fatalf("stream 0 at %d, want %d", got, b.N)
			}
		})
	}
}
