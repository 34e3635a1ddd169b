package sse

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/metrics"
)

// fanout is the Handler's fan-out workers: a few per core
// (workersPerProc), each owning a shard of the HTTP/1.x streams. When an event is published, the streams
// it reaches are queued on their workers, and each worker writes the
// already-encoded frames straight to each socket without waiting (see
// stream.deliverDirect): no goroutine wakes per delivery. A stream whose
// socket does not take a whole write is handed back to its own goroutine
// (parked), which finishes it under the write deadline.
//
// Workers start with the first stream that can use them and stop in
// Handler.Close; a Handler that never serves a hijacked stream runs none.
// workersPerProc is how many fan-out workers run per GOMAXPROCS. One per
// core would be enough for the CPU, but a worker's turn is one goroutine:
// when the operating system takes its thread away mid-turn (a busy
// machine), the rest of that worker's shard waits for it, and no other
// core can help. With a few smaller shards per core the other cores run
// the other workers meanwhile. Measured with herald bench at 1,000
// subscribers on a 2-core machine under load: p99 at about the old
// goroutine-per-stream figure with 4 per core, about twice it with 1. A
// worker costs one wake per publish, not per delivery.
const workersPerProc = 4

type fanout struct {
	metrics *metrics.Metrics

	mu      sync.Mutex // guards workers, next and stopped
	workers []*worker
	next    int  // the worker the next stream gets (round robin)
	stopped bool // stop was called: no worker starts any more
	done    sync.WaitGroup
	stop    chan struct{} // closed by close
}

// worker returns the worker a new stream is to use, starting the workers
// on the first call, or nil once the fan-out has stopped (the stream then
// writes everything itself).
func (f *fanout) worker() *worker {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil
	}
	if f.workers == nil {
		f.stop = make(chan struct{})
		n := workersPerProc * runtime.GOMAXPROCS(0)
		f.workers = make([]*worker, n)
		for i := range f.workers {
			w := newWorker(f.metrics)
			f.workers[i] = w
			f.done.Go(func() { w.run(f.stop) }) // ends when close closes stop
		}
	}
	w := f.workers[f.next]
	f.next = (f.next + 1) % len(f.workers)
	return w
}

// close stops the workers and waits for them. Each hands the streams it
// still has queued to their goroutines; a stream queued later is handed
// over by push. It is safe to call more than once.
func (f *fanout) close() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	if f.stop != nil {
		close(f.stop)
	}
	f.mu.Unlock()
	f.done.Wait()
}

// worker writes the queued streams' pending frames, one stream after
// another, without waiting on any of them.
type worker struct {
	metrics *metrics.Metrics
	wake    chan struct{} // buffered 1: push never blocks

	mu      sync.Mutex
	ready   []*stream // guarded by mu; streams with something to do, each once (stream.queued)
	stopped bool      // guarded by mu; the worker has returned
	// gone is stopped, read without the lock by a stream about to go
	// direct: one that did after the worker stopped would be handed back
	// at once, over and over.
	gone atomic.Bool

	spare []*stream // owned by the worker's goroutine: the list swapped in for ready
}

func newWorker(m *metrics.Metrics) *worker {
	return &worker{metrics: m, wake: make(chan struct{}, 1)}
}

// push queues s, which must have been marked queued by its caller, and
// wakes the worker. Once the worker has stopped it hands s to its own
// goroutine instead. It never blocks: it runs in the publisher's wake
// callback.
func (w *worker) push(s *stream) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		s.queued.Store(false)
		s.park() // no worker touches s again: its goroutine may own it
		return
	}
	w.ready = append(w.ready, s)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // the worker is already due to look
	}
}

// run serves the ready list until stop is closed.
func (w *worker) run(stop <-chan struct{}) {
	for {
		select {
		case <-w.wake:
			w.serveReady()
		case <-stop:
			w.mu.Lock()
			w.stopped = true
			w.gone.Store(true)
			left := w.ready
			w.ready = nil
			w.mu.Unlock()
			for _, s := range left {
				s.queued.Store(false)
				s.park()
			}
			return
		}
	}
}

// serveReady gives every queued stream its turn (stream.deliverDirect).
// It is the per-publish work of the fan-out path; BenchmarkFanOut runs it
// alone.
func (w *worker) serveReady() {
	w.mu.Lock()
	batch := w.ready
	w.ready = w.spare
	w.mu.Unlock()
	delivered := 0
	for i, s := range batch {
		delivered += s.deliverDirect()
		batch[i] = nil // do not pin a stream that ends
	}
	w.spare = batch[:0]
	if delivered > 0 {
		// Counted per worker turn, not per write: a counter's atomic add
		// per delivery showed in the fan-out profile.
		w.metrics.Delivered.Add(float64(delivered))
	}
}
