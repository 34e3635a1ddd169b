package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/config"
)

// clientFlags are the flags every client subcommand shares.
type clientFlags struct {
	url     string
	token   string
	dataDir string
}

// newClientFlagSet returns a flag set with --url, --token and --data-dir,
// defaulting from HERALD_URL (or HERALD_ADDR), HERALD_TOKEN (or
// HERALD_ADMIN_TOKEN) and HERALD_DATA_DIR.
func newClientFlagSet(name string, getenv func(string) string, stderr io.Writer) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := &clientFlags{}
	url := getenv("HERALD_URL")
	if url == "" {
		addr := getenv("HERALD_ADDR")
		if addr == "" {
			addr = config.DefaultAddr
		}
		url = "http://" + addr
	}
	token := getenv("HERALD_TOKEN")
	if token == "" {
		token = getenv("HERALD_ADMIN_TOKEN")
	}
	dataDir := getenv("HERALD_DATA_DIR")
	if dataDir == "" {
		dataDir = config.DefaultDataDir
	}
	fs.StringVar(&cf.url, "url", url, "server URL ($HERALD_URL, or http:// + $HERALD_ADDR)")
	fs.StringVar(&cf.token, "token", token, "app key or admin token ($HERALD_TOKEN, else $HERALD_ADMIN_TOKEN, else the admin token in --data-dir)")
	fs.StringVar(&cf.dataDir, "data-dir", dataDir, "data directory whose admin token is used when no token is given ($HERALD_DATA_DIR)")
	return fs, cf
}

func (cf *clientFlags) client() (*client.Client, error) {
	tok := cf.token
	if tok == "" {
		var err error
		if tok, err = auth.ReadAdminToken(cf.dataDir); err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, fmt.Errorf("no token: pass --token or set HERALD_TOKEN (no admin token found in %s)", cf.dataDir)
		}
	}
	return client.New(cf.url, tok), nil
}

// parseArgs parses flags and checks the positional argument count; usage,
// the command's synopsis ("herald topic create APP TOPIC"), heads what -h
// and a wrong count print.
func parseArgs(fs *flag.FlagSet, args []string, want int, usage string) ([]string, error) {
	return parseArgsMin(fs, args, want, want, usage)
}

// parseArgsMin is parseArgs for commands that take from min to max
// positional arguments (max < 0: no limit).
func parseArgsMin(fs *flag.FlagSet, args []string, minArgs, maxArgs int, usage string) ([]string, error) {
	config.SetUsage(fs, usage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage // reported, with the usage, by the flag package
	}
	if fs.NArg() < minArgs || (maxArgs >= 0 && fs.NArg() > maxArgs) {
		fs.Usage()
		return nil, errUsage
	}
	return fs.Args(), nil
}
