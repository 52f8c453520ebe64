package archtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const mod = "github.com/captchafsm/captchafsm"

// imports maps each package of the module (tests excluded) to its direct
// imports.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"/...").Output()
	require.NoError(t, err, "go list")
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[f[0]] = f[1:]
	}
	return m
}

// TestThirdPartyBehindOnePackage: looplab/fsm only in fsm, bbolt only in
// boltstore, pgx only in pgstore, cobra only in the CLI.
func TestThirdPartyBehindOnePackage(t *testing.T) {
	owners := map[string][]string{
		"github.com/looplab/fsm":       {mod + "/fsm"},
		"go.etcd.io/bbolt":             {mod + "/persist/boltstore"},
		"github.com/jackc/pgx/v5":      {mod + "/persist/pgstore"},
		"github.com/spf13/cobra":       {mod + "/internal/cli", mod + "/internal/docgen"},
		"github.com/chromedp/chromedp": {},
	}
	for pkg, imps := range imports(t) {
		for _, imp := range imps {
			for lib, allowed := range owners {
				if imp == lib || strings.HasPrefix(imp, lib+"/") {
					assert.Contains(t, allowed, pkg, "%s imports %s", pkg, lib)
				}
			}
		}
	}
}

// layers maps every package of the module (tests excluded) to the packages
// of ours it may import. A package missing here fails the test: a new
// package must say where it stands.
var layers = map[string][]string{
	// The module's root: the one-call start and typed requests.
	".":                           {"engine", "persist", "persist/boltstore", "provider", "provider/providersim", "states", "transitions"},
	"states":                      {},
	"transitions":                 {"states"},
	"persist":                     {"states", "transitions"},
	"fsm":                         {"states", "transitions", "persist"},
	"persist/boltstore":           {"persist", "states", "transitions"},
	"persist/pgstore":             {"persist", "states", "transitions"},
	"persist/persisttest":         {"persist", "states", "transitions"},
	"persist/pgstore/pgstoretest": {"persist", "persist/pgstore"},
	"provider":                    {"states", "transitions"},
	"provider/protocol":           {"provider", "states", "transitions"},
	"provider/providersim":        {"provider", "provider/protocol", "states", "transitions"},
	"engine":                      {"provider", "fsm", "persist", "states", "transitions"},
	"metrics":                     {"engine", "provider", "persist", "states", "transitions"},
	"dashboard":                   {"engine", "metrics", "provider", "fsm", "persist", "states", "transitions", "internal/jsonstream"},
	"internal/jsonstream":         {},
	"internal/gateway":            {"engine", "persist", "provider", "provider/protocol", "states", "transitions"},
	"internal/cli":                {"*"},
	"internal/docgen":             {"internal/cli", "fsm", "states", "transitions"},
	"internal/crashtest":          {"provider", "provider/providersim", "fsm", "persist", "states", "transitions"},
	"internal/fleettest":          {},
	"internal/archtest":           {},
	"internal/npmtest":            {},
	"internal/readmetest":         {},
	"cmd/captchafsm":              {"internal/cli"},
}

// TestImportDirection: every package imports only what lies below it; the
// provider's client and its simulator import nothing of the engine, and the
// engine sees stores only through persist.
func TestImportDirection(t *testing.T) {
	all := imports(t)
	for pkg, imps := range all {
		name := nameOf(pkg)
		ok, known := layers[name]
		if !assert.True(t, known, "package %s has no entry in layers: say what it may import", name) {
			continue
		}
		if len(ok) == 1 && ok[0] == "*" {
			continue
		}
		for _, imp := range imps {
			if strings.HasPrefix(imp, mod+"/") {
				assert.Contains(t, ok, strings.TrimPrefix(imp, mod+"/"), "%s must not import %s", name, imp)
			}
		}
	}
	for name := range layers {
		path := mod + "/" + name
		if name == "." {
			path = mod
		}
		_, found := all[path]
		assert.True(t, found, "layers names %s, which does not exist", name)
	}
}

// nameOf is a package's key in layers: its path inside the module, "."
// for the module's root.
func nameOf(pkg string) string {
	if pkg == mod {
		return "."
	}
	return strings.TrimPrefix(pkg, mod+"/")
}

// TestEngineFilesStaySmall: each file of engine/ holds one job, which
// reads in one sitting (issue 14: under about 450 lines); a file that grows
// past it is a job to split off.
func TestEngineFilesStaySmall(t *testing.T) {
	const most = 450
	files, err := filepath.Glob("../../engine/*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.LessOrEqual(t, bytes.Count(b, []byte("\n")), most, "%s: split off one of its jobs", filepath.Base(f))
	}
}
