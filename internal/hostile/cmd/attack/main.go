// Command attack measures how a running Herald answers /healthz while one
// client holds many connections with request bodies that never finish:
//
//	go run ./internal/hostile/cmd/attack -url http://127.0.0.1:8080 -n 400
//
// It opens -n slow-body connections to a publish route (with -key, or
// none), then times -probes GETs of /healthz, each on a fresh connection,
// and prints each time (or the error) and the median.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/hostile"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	n := flag.Int("n", 400, "slow-body connections to hold")
	shape := flag.String("shape", string(hostile.Chunked), "chunked, short-length or idle (a connection flood: connect, send nothing)")
	key := flag.String("key", "", "bearer key sent with each slow body (none if empty)")
	path := flag.String("path", "/v1/apps/app/topics/t/messages", "path of the slow POSTs")
	probes := flag.Int("probes", 5, "GETs of /healthz to time")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on one probe")
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil {
		return err
	}
	ctx := context.Background()
	conns, failed := hostile.Flood(ctx, *n, func(ctx context.Context) (net.Conn, error) {
		return hostile.SlowBody(ctx, u.Host, *path, *key, hostile.Shape(*shape))
	})
	defer hostile.CloseAll(conns)
	fmt.Printf("holding %d slow-body connections (%d failed to open)\n", len(conns), failed)
	var times []time.Duration
	for i := range *probes {
		d, status, err := hostile.Time(ctx, *base+"/healthz", *timeout)
		if err != nil {
			fmt.Printf("probe %d: %v after %s\n", i+1, err, d.Round(time.Millisecond))
			d = *timeout
		} else {
			fmt.Printf("probe %d: %d in %s\n", i+1, status, d.Round(time.Millisecond))
		}
		times = append(times, d)
	}
	slices.Sort(times)
	fmt.Printf("median /healthz under attack: %s\n", times[len(times)/2].Round(time.Millisecond))
	return nil
}
