package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
)

// invocation is what tells how this program was started, so that the
// commands it prints (demo's next steps) work when pasted as they are.
type invocation struct {
	exe  string // the running executable (os.Executable)
	arg0 string // os.Args[0], as the user typed it
	dir  string // the working directory
	// pkg and module are the main package's import path and its module's
	// (from the build information); version is the module's version,
	// "(devel)" for a build from a checkout.
	pkg, module, version string
	lookPath             func(string) (string, error)
}

// currentInvocation reads the process's invocation; exe, if not "", stands
// for os.Executable (Options.Executable).
func currentInvocation(exe string) invocation {
	inv := invocation{exe: exe, lookPath: exec.LookPath}
	if inv.exe == "" {
		inv.exe, _ = os.Executable()
	}
	if len(os.Args) > 0 {
		inv.arg0 = os.Args[0]
	}
	inv.dir, _ = os.Getwd()
	if bi, ok := debug.ReadBuildInfo(); ok {
		inv.pkg, inv.module, inv.version = bi.Path, bi.Main.Path, bi.Main.Version
	}
	return inv
}

// goRun reports whether the executable is one `go run` built. Its path is
// no use to print: go run builds in an exe directory of its go-build work
// directory, deleted when go run returns, or (Go 1.24 on) runs a copy kept
// in the build cache under a content hash, which the cache may trim.
func (inv invocation) goRun() bool {
	dir := filepath.Dir(inv.exe)
	if filepath.Base(dir) == "exe" {
		for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
			if strings.HasPrefix(filepath.Base(d), "go-build") {
				return true
			}
		}
	}
	return cachedExe.MatchString(filepath.ToSlash(dir))
}

// cachedExe matches the directory of an executable in the go command's
// build cache ($GOCACHE/ab/ab…(64 hex)-d/NAME).
var cachedExe = regexp.MustCompile(`/([0-9a-f]{2})/([0-9a-f]{64})-d$`)

// command is the shell words that run this program again from the
// working directory: "go run ./cmd/captchafsm" (the path relative to
// here) after go run; the bare name when that name on $PATH is this very
// file; else the executable's absolute path.
func (inv invocation) command() string {
	if inv.goRun() {
		return "go run " + shellQuote(inv.goRunTarget())
	}
	exe := inv.exe
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	if inv.arg0 != "" && !strings.ContainsRune(inv.arg0, filepath.Separator) && inv.lookPath != nil {
		if p, err := inv.lookPath(inv.arg0); err == nil {
			if r, err := filepath.EvalSymlinks(p); err == nil && r == exe {
				return shellQuote(inv.arg0)
			}
		}
	}
	if abs, err := filepath.Abs(inv.exe); err == nil {
		return shellQuote(abs)
	}
	return shellQuote(inv.exe)
}

// goRunTarget is what `go run` needs to build this program again from the
// working directory: the main package's directory relative to it when the
// working directory is inside the module's checkout; else the package path
// at the module's version; else the bare package path (a go.work
// workspace resolves it).
func (inv invocation) goRunTarget() string {
	if root := inv.moduleRoot(); root != "" {
		pkgDir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(inv.pkg, inv.module), "/")))
		if rel, err := filepath.Rel(inv.dir, pkgDir); err == nil {
			rel = filepath.ToSlash(rel)
			if rel == "." || strings.HasPrefix(rel, "../") {
				return rel
			}
			return "./" + rel
		}
	}
	if inv.version != "" && inv.version != "(devel)" {
		return inv.pkg + "@" + inv.version
	}
	return inv.pkg
}

// moduleRoot is the directory, the working one or above, whose go.mod
// declares the program's module; "" when there is none.
func (inv invocation) moduleRoot() string {
	if inv.dir == "" || inv.module == "" {
		return ""
	}
	for d := inv.dir; ; d = filepath.Dir(d) {
		if modulePath(filepath.Join(d, "go.mod")) == inv.module {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// modulePath is the module path a go.mod file declares, "" if none.
func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			rest, _, _ = strings.Cut(rest, "//")
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
