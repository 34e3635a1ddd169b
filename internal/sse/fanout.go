package sse

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/metrics"
)

// fanout is the Handler's fan-out workers, about one per core, and the run
// queue they share: the direct HTTP/1.x streams that have something to
// write. A publish queues each stream it reaches (once, however often it
// is woken; see stream.turn) and wakes one parked worker if none is awake;
// the worker writes the already-encoded frames straight to each socket
// without waiting (stream.deliverDirect). A stream whose socket does not
// take a whole write is handed back to its own goroutine (parked), which
// finishes it under the write deadline.
//
// Workers take the queue a chunk at a time, and a worker that leaves more
// than a chunk behind wakes one more. So a publish reaching a few streams
// costs one wake, not one per worker those streams happen to sit on; and
// a worker whose thread the operating system takes away mid-turn holds
// back only its chunk, since the other workers pull the rest (with
// streams bound to fixed workers, one per core, such a stall held back a
// whole shard and doubled p99 on a loaded 2-core machine).
//
// Workers start with the first stream that can use them and stop in
// Handler.Close; a Handler that never serves a hijacked stream runs none.
type fanout struct {
	metrics *metrics.Metrics
	done    sync.WaitGroup
	// gone is stopped, read without the lock by a stream about to go
	// direct: one that did after the workers stopped would be handed
	// back at once, over and over.
	gone atomic.Bool

	mu      sync.Mutex
	ready   []*stream // guarded by mu; the run queue is ready[head:], in the order the streams were woken
	head    int       // guarded by mu
	idle    []*worker // guarded by mu; the parked workers, the last parked last
	awake   int       // guarded by mu; workers started and not parked
	started bool      // guarded by mu; the workers were started
	stopped bool      // guarded by mu; close was called: no worker starts or parks any more
}

// chunk is how many streams a worker takes from the run queue at a time.
// At a few microseconds per write it is a turn of about a hundred, short
// enough that a worker stalled mid-chunk delays few streams, long enough
// that the queue's lock is taken once per many writes.
const chunk = 32

// start starts the workers on the first call. It reports false once the
// fan-out has stopped: the stream then writes everything itself.
func (f *fanout) start() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	if !f.started {
		f.started = true
		n := runtime.GOMAXPROCS(0)
		for range n {
			w := &worker{f: f, wake: make(chan struct{}, 1)}
			f.idle = append(f.idle, w)
			f.done.Go(w.run) // ends when close wakes it with stopped set
		}
	}
	return true
}

// close stops the workers and waits for them. They hand the streams still
// queued to their goroutines; a stream queued later is handed over by
// push. It is safe to call more than once.
func (f *fanout) close() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	f.gone.Store(true)
	idle := f.idle
	f.idle = nil
	f.awake += len(idle)
	f.mu.Unlock()
	for _, w := range idle {
		w.signal()
	}
	f.done.Wait()
}

// push queues s, which its caller has marked queued (stream.turn), and
// wakes a worker if it is needed. Once the fan-out has stopped it hands s
// to its own goroutine instead. It never blocks: it runs in the
// publisher's wake callback.
func (f *fanout) push(s *stream) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		s.handBack()
		return
	}
	f.ready = append(f.ready, s)
	w := f.wakeLocked()
	f.mu.Unlock()
	if w != nil {
		w.signal()
	}
}

// wakeLocked takes a parked worker off the idle list and returns it, to
// be signalled once mu is released, when none is awake or more than a
// chunk waits; otherwise it returns nil. f.mu must be held.
func (f *fanout) wakeLocked() *worker {
	if len(f.idle) == 0 || f.awake > 0 && len(f.ready)-f.head <= chunk {
		return nil
	}
	w := f.idle[len(f.idle)-1]
	f.idle = f.idle[:len(f.idle)-1]
	f.awake++
	return w
}

// worker is one fan-out goroutine: it serves the run queue a chunk at a
// time until the queue is empty, then parks until a push wakes it.
type worker struct {
	f    *fanout
	wake chan struct{} // buffered 1: signal never blocks

	turn [chunk]*stream // owned by the worker's goroutine: the chunk it serves
}

// signal wakes w, which has been taken off the idle list.
func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // cannot happen: w was parked, and is woken once
	}
}

func (w *worker) run() {
	for {
		<-w.wake // never closed: run ends by return
		for {
			n, stopped := w.take()
			if n < 0 {
				if stopped {
					return
				}
				break // parked
			}
			if stopped {
				for _, s := range w.turn[:n] {
					s.handBack()
				}
			} else {
				w.serve(n)
				// Let the publishers in between chunks: a worker's sends
				// never give up its P (sendNow is a raw system call), so
				// while the queue stays full the goroutines waiting for
				// that P (publishes, the store's writer) would wait for the
				// scheduler's 10 ms preemption. At 5,000 subscribers on a
				// loaded 2-core machine this halved the publish p99 (179 ->
				// 87 ms, same run, median of 3), at the same CPU per write.
				runtime.Gosched()
			}
			clear(w.turn[:n]) // do not pin a stream that ends
		}
	}
}

// take moves up to a chunk of the run queue into w.turn and returns how
// many, after waking one more worker if more than a chunk is left. With
// the queue empty it returns -1, after parking w (putting it on the idle
// list) unless the fan-out has stopped.
func (w *worker) take() (n int, stopped bool) {
	f := w.f
	f.mu.Lock()
	stopped = f.stopped
	n = copy(w.turn[:], f.ready[f.head:])
	if n == 0 {
		f.awake--
		if !stopped {
			f.idle = append(f.idle, w)
		}
		f.mu.Unlock()
		return -1, stopped
	}
	clear(f.ready[f.head : f.head+n])
	f.head += n
	switch {
	case f.head == len(f.ready):
		f.ready, f.head = f.ready[:0], 0
	case f.head >= 4*chunk && f.head > len(f.ready)/2:
		// Under a steady load the queue may never empty: keep append
		// from growing it without end.
		m := copy(f.ready, f.ready[f.head:])
		clear(f.ready[m:])
		f.ready, f.head = f.ready[:m], 0
	}
	more := f.wakeLocked()
	f.mu.Unlock()
	if more != nil {
		more.signal()
	}
	return n, stopped
}

// serve gives each stream of w.turn[:n] its turn (stream.deliverDirect).
// It is the per-publish work of the fan-out path; BenchmarkFanOut runs it
// alone.
func (w *worker) serve(n int) {
	delivered := 0
	for _, s := range w.turn[:n] {
		s.turn.Store(turnBusy)
		delivered += s.deliverDirect()
		if !s.turn.CompareAndSwap(turnBusy, turnIdle) {
			// Woken during its turn: it goes to the back of the queue,
			// where whichever worker takes it next finds what is new.
			s.turn.Store(turnQueued)
			w.f.push(s)
		}
	}
	if delivered > 0 {
		// Counted per chunk, not per write: a counter's atomic add per
		// delivery showed in the fan-out profile.
		w.f.metrics.Delivered.Add(float64(delivered))
	}
}
