package archtest

import (
	"os/exec"
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

// TestImportDirection: the core packages import only what lies below them.
func TestImportDirection(t *testing.T) {
	allowed := map[string][]string{
		mod + "/states":            {},
		mod + "/transitions":       {mod + "/states"},
		mod + "/fsm":               {mod + "/states", mod + "/transitions", mod + "/persist"},
		mod + "/persist":           {mod + "/states", mod + "/transitions"},
		mod + "/persist/boltstore": {mod + "/persist", mod + "/states", mod + "/transitions"},
		mod + "/provider":          {mod + "/states", mod + "/transitions"},
		mod + "/engine":            {mod + "/provider", mod + "/fsm", mod + "/persist", mod + "/states", mod + "/transitions"},
	}
	all := imports(t)
	for pkg, ok := range allowed {
		imps, found := all[pkg]
		require.True(t, found, "package %s exists", pkg)
		for _, imp := range imps {
			if strings.HasPrefix(imp, mod+"/") {
				assert.Contains(t, ok, imp, "%s must not import %s", pkg, imp)
			}
		}
	}
}
