package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// adminTokenCmd prints the admin token that herald serve generated and
// keeps: in the data directory, or in cluster mode in the database. With
// --rotate it replaces it with a new one first. The token is alone on
// stdout, so a script can take it with $(herald admin-token).
func adminTokenCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald admin-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := func(name, fallback string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return fallback
	}
	dataDir := fs.String("data-dir", def("HERALD_DATA_DIR", config.DefaultDataDir), "data directory the server keeps its token in ($HERALD_DATA_DIR)")
	dbURL := fs.String("database-url", def("HERALD_DATABASE_URL", ""), "cluster mode: the database the nodes keep their token in ($HERALD_DATABASE_URL)")
	rotate := fs.Bool("rotate", false, "replace the token with a new one, then print it; servers use it from their next start")
	if _, err := parseArgs(fs, args, 0, "herald admin-token [--rotate] [flags]"); err != nil {
		return err
	}

	var (
		tok, where string
		err        error
	)
	if *dbURL != "" {
		tok, where, err = adminTokenInDatabase(ctx, *dbURL, *rotate)
	} else {
		where = auth.AdminTokenPath(*dataDir)
		if *rotate {
			tok, err = auth.RotateAdminToken(*dataDir)
		} else {
			tok, err = auth.ReadAdminToken(*dataDir)
		}
	}
	if err != nil {
		return err
	}
	if tok == "" {
		return fmt.Errorf("no admin token in %s yet: herald serve makes one on its first start, or --rotate makes one now", where)
	}
	fmt.Fprintln(stdout, tok)
	if *rotate {
		fmt.Fprintf(stderr, "a new admin token is kept in %s; running servers accept the old one until they restart. "+
			"Browser tokens are signed with a key derived from the admin token unless --token-secret is set: those minted before stop working.\n", where)
	}
	return nil
}

func adminTokenInDatabase(ctx context.Context, dbURL string, rotate bool) (tok, where string, err error) {
	where = "the database"
	st, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		return "", where, fmt.Errorf("open the database: %w", err)
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	if rotate {
		tok = auth.GenerateAdminToken()
		return tok, where, st.SetSetting(ctx, auth.AdminTokenSetting, tok)
	}
	tok, err = st.Setting(ctx, auth.AdminTokenSetting)
	return tok, where, err
}
