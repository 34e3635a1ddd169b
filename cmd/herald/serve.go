package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/server"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(args, getenv, stderr)
	if errors.Is(err, config.ErrCommandLine) {
		return errUsage // reported, with the usage, by the flag package
	}
	if err != nil {
		return err
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)

	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if srv.GeneratedAdminToken {
		// Shown once; it is kept in the data directory (mode 0600), or in
		// cluster mode in the database, where every node finds it.
		where := cfg.DataDir + "/admin-token"
		if cfg.DatabaseURL != "" {
			where = "the database, for every node"
		}
		fmt.Fprintf(stdout, "admin token (generated, kept in %s; herald admin-token prints it again): %s\n", where, srv.AdminToken)
	}
	return srv.Serve(ctx)
}
