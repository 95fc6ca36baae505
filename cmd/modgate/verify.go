package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/progress"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

const verifyUsage = `Usage: modgate verify [--quarantine] [serve flags...]

Checks every stored go.mod and zip against the checksum database (for
versions stored before verification existed, or while it was off) and
reports each mismatch. With --quarantine, mismatching files are moved to
quarantine/ in the storage, so they are fetched and verified again on the
next request. It takes the same storage and checksum database options as
"modgate serve" (--data-dir, --sumdb, --nosumdb, --upstream, --config).
Exit status: 0 all verified, 1 a mismatch or error was found.
`

func verify(args []string) error {
	quarantine := false
	var rest []string
	for _, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "quarantine":
			quarantine = true
		case "help", "h":
			fmt.Fprint(os.Stderr, verifyUsage)
			return nil
		default:
			rest = append(rest, a)
		}
	}
	cfg, err := config.LoadEnviron(rest, os.Environ())
	if err != nil {
		return err
	}
	if cfg.SumDB == "off" {
		return errors.New("--sumdb off: there is no checksum database to verify against")
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The storage and checksum database exactly as "modgate serve" builds
	// them from the same options; nothing is served.
	srv, err := server.New(ctx, cfg, server.WithLogger(log))
	if err != nil {
		return err
	}
	defer srv.Close()
	sum, err := verifyStore(ctx, srv.Store(), srv.Verifier(), quarantine, os.Stdout, progress.New(os.Stderr, "verifying"))
	fmt.Printf("%d files checked: %d verified, %d skipped (--nosumdb), %d mismatched, %d errors", sum.checked, sum.ok, sum.skipped, sum.mismatched, sum.errors)
	if quarantine {
		fmt.Printf(", %d quarantined", sum.quarantined)
	}
	fmt.Println()
	if err != nil {
		return err
	}
	if sum.mismatched+sum.errors > 0 {
		return errors.New("verification found problems (listed above)")
	}
	return nil
}

type verifySummary struct {
	checked, ok, skipped, mismatched, errors, quarantined int
}

// verifyStore checks each stored .mod and .zip against v, writing one line
// per problem to out.
func verifyStore(ctx context.Context, st store.Store, v *sumdb.Verifier, quarantine bool, out io.Writer, bar *progress.Bar) (verifySummary, error) {
	var keys []string
	err := st.List(ctx, "mod/", func(key string) error {
		if strings.HasSuffix(key, ".mod") || strings.HasSuffix(key, ".zip") {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return verifySummary{}, err
	}
	sort.Strings(keys)
	bar.Start(len(keys))
	defer bar.Done()
	var sum verifySummary
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		bar.Add(1)
		sum.checked++
		path, version, ext, err := store.ParseVersionKey(key)
		if err != nil {
			continue // not a module file
		}
		if v.Skips(path) {
			sum.skipped++
			continue
		}
		h1, err := storedHash(ctx, st, key, ext)
		if err == nil {
			err = v.Verify(ctx, path, version, ext == "mod", h1)
		}
		var ve *sumdb.VerifyError
		switch {
		case err == nil:
			sum.ok++
			continue
		case errors.As(err, &ve) && ve.Kind == sumdb.Mismatch:
			sum.mismatched++
		default:
			sum.errors++
		}
		bar.Printf(out, "%s@%s .%s: %v\n", path, version, ext, err)
		if quarantine && errors.As(err, &ve) && ve.Kind == sumdb.Mismatch {
			if qerr := quarantineKey(ctx, st, key); qerr != nil {
				bar.Printf(out, "  cannot quarantine %s: %v\n", key, qerr)
			} else {
				sum.quarantined++
			}
		}
	}
	return sum, nil
}

// storedHash returns the h1: hash of a stored go.mod or zip.
func storedHash(ctx context.Context, st store.Store, key, ext string) (string, error) {
	rc, info, err := st.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if ext == "mod" {
		data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
		if err != nil {
			return "", err
		}
		return modcheck.HashGoMod(data)
	}
	// Disk stores hand out an *os.File, which is read in place; any other
	// store's object is copied to a scratch file first.
	if f, ok := rc.(io.ReaderAt); ok {
		return modcheck.HashZip(f, info.Size)
	}
	tmp, err := os.CreateTemp("", "modgate-verify-*.zip")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, rc)
	if err != nil {
		return "", err
	}
	return modcheck.HashZip(tmp, n)
}

// quarantineKey moves a stored object to quarantine/<key>.
func quarantineKey(ctx context.Context, st store.Store, key string) error {
	rc, _, err := st.Open(ctx, key)
	if err != nil {
		return err
	}
	err = st.Put(ctx, "quarantine/"+key, rc)
	rc.Close()
	if err != nil {
		return err
	}
	if strings.HasSuffix(key, ".zip") {
		st.Delete(ctx, strings.TrimSuffix(key, ".zip")+".ziphash")
	}
	return st.Delete(ctx, key)
}
