package main

// TestReadmeExamplesPrintWhatTheyShow walks README.md's shell examples, in
// order, against the wiring of `coinop dev` on a fresh database, and checks
// that each prints what the README shows under it. The rules:
//
// Which blocks run. Every fenced block opened with ```sh runs. A block is left
// out when the line just above its fence is
//
//	<!-- readme-test: skip: REASON -->
//
// (for `make dev` itself, benchmarks, a 60 s load test). Every skip needs a
// reason, and there may be at most maxSkippedBlocks, so skipping stays the
// exception. Shell examples must be ```sh (a ```bash, ```shell or ```console
// block is an error); other languages (yaml, json, sql) never run.
//
// Commands and their output. In a block, a command is a line that is neither
// blank nor a comment, with the lines after it while a line ends in `\` or
// `|`. The `#` lines directly under a command (no blank line between) are its
// shown output, each without its leading "# ". A comment after a blank line,
// or before the first command, is prose, and a comment at the end of a
// command line is a remark: neither is checked.
//
// Running. All commands run in order in one bash, in a temporary directory
// holding examples/catalog.yaml, so what one example exports the next one
// sees, as in a user's terminal. PATH starts with a coinop built from this
// tree. COINOP_URL and COINOP_DATABASE_URL point at the test's server and
// database: they stand in for the built-in defaults, which are where
// `make dev` listens and keeps its data. EDITOR is a script making the edit the
// README describes. Each http://127.0.0.1:8080 in a command becomes the test
// server's address, and a command naming any other URL fails the test: the
// walk reaches nothing outside this machine's test servers.
//
// Matching. A command's stdout and stderr together (what a terminal shows)
// must match its shown output, where whitespace (spaces, line breaks) is
// ignored on both sides, so the README may wrap long lines, and `…` stands for
// any text, such as ids, times and parts left out. A command with shown output
// is judged by it alone (so one that exits 1 can be shown); a command with
// none must exit 0. A mismatch prints the README line, the command, both
// texts and where they part.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/coinop/coinop/internal/testenv"
)

const (
	readmePath       = "../../README.md"
	readmeSkipMarker = "<!-- readme-test: skip:"
	maxSkippedBlocks = 4
	// readmeDevURL is where the README's examples expect `make dev`.
	readmeDevURL = "http://127.0.0.1:8080"
	// placeholder in shown output stands for any text.
	placeholder = "…"
)

// readmeCommand is one command of the README with the output shown under it.
type readmeCommand struct {
	line   int    // README line of the command's first line
	text   string // the command as written, continuation lines included
	shown  []string
	hasOut bool
}

// readmeBlock is one fenced shell block.
type readmeBlock struct {
	line     int // README line of the opening fence
	skip     string
	commands []readmeCommand
}

// parseReadme returns the README's ```sh blocks with their commands.
func parseReadme(t *testing.T, text string) []readmeBlock {
	t.Helper()
	var blocks []readmeBlock
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```") {
			continue
		}
		lang := strings.TrimPrefix(fence, "```")
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		switch lang {
		case "bash", "shell", "console", "zsh":
			t.Errorf("README.md:%d: a ```%s block: write shell examples as ```sh, so the walk runs them", start+1, lang)
			continue
		case "sh":
		default:
			continue
		}
		b := readmeBlock{line: start + 1}
		if start > 0 && strings.HasPrefix(strings.TrimSpace(lines[start-1]), readmeSkipMarker) {
			b.skip = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[start-1]), readmeSkipMarker), "-->")
			b.skip = strings.TrimSpace(b.skip)
			if b.skip == "" {
				t.Errorf("README.md:%d: a skipped block must say why (%s REASON -->)", start, readmeSkipMarker)
			}
		}
		var cur *readmeCommand
		for j := 0; j < len(body); j++ {
			l := body[j]
			trimmed := strings.TrimSpace(l)
			switch {
			case trimmed == "":
				cur = nil
			case strings.HasPrefix(trimmed, "#"):
				if cur != nil {
					cur.hasOut = true
					cur.shown = append(cur.shown, strings.TrimPrefix(strings.TrimPrefix(trimmed, "#"), " "))
				}
			default:
				c := readmeCommand{line: start + 2 + j, text: l}
				for (strings.HasSuffix(strings.TrimSpace(l), `\`) || strings.HasSuffix(strings.TrimSpace(l), "|")) && j+1 < len(body) {
					j++
					l = body[j]
					c.text += "\n" + l
				}
				b.commands = append(b.commands, c)
				cur = &b.commands[len(b.commands)-1]
			}
		}
		blocks = append(blocks, b)
	}
	return blocks
}

var urlInCommand = regexp.MustCompile(`https?://[^\s"'/]+`)

func TestReadmeExamplesPrintWhatTheyShow(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseReadme(t, string(readme))
	var skipped []string
	var cmds []readmeCommand
	for _, b := range blocks {
		if b.skip != "" {
			skipped = append(skipped, fmt.Sprintf("README.md:%d (%s)", b.line, b.skip))
			continue
		}
		cmds = append(cmds, b.commands...)
	}
	if len(skipped) > maxSkippedBlocks {
		t.Errorf("%d README blocks are skipped, at most %d may be: make examples runnable instead:\n%s",
			len(skipped), maxSkippedBlocks, strings.Join(skipped, "\n"))
	}
	t.Logf("walking %d commands of %d blocks; skipped: %s", len(cmds), len(blocks)-len(skipped), strings.Join(skipped, "; "))
	for _, c := range cmds {
		if strings.Contains(c.text, placeholder) {
			t.Errorf("README.md:%d: a command with %s cannot be run as written:\n%s", c.line, placeholder, c.text)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's examples need %s: install it (%v)", tool, err)
		}
	}
	work := t.TempDir()
	bin := filepath.Join(work, ".bin")
	buildCoinop(t, bin)
	writeEditor(t, bin)
	copyFile(t, "../../examples/catalog.yaml", filepath.Join(work, "examples", "catalog.yaml"))

	// coinop dev, as make dev runs it, on a fresh (unmigrated) database: dev
	// migrates it, publishes the demo catalog and funds demo-player.
	dbURL := testenv.NewEmptyDatabase(t)
	redisURL, prefix := testenv.Redis(t)
	devSettings := map[string]string{
		"COINOP_DATABASE_URL": dbURL, "COINOP_REDIS_URL": redisURL, "COINOP_REDIS_PREFIX": prefix,
		"COINOP_ADDR": "127.0.0.1:0", "COINOP_FAKE_STORE_DIR": filepath.Join(work, ".dev", "fakestore"),
		"COINOP_LOG_LEVEL": "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	banner, logs := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, []string{"--catalog", filepath.Join(work, "examples", "catalog.yaml"), "--dir", filepath.Join(work, ".dev")},
			env(devSettings), banner, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("coinop dev did not stop")
		}
	})
	serving := regexp.MustCompile(`coinop dev is serving on (http://127\.0\.0\.1:[0-9]+)`)
	var base string
	waitFor(t, "coinop dev's banner", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup, which waits for it
			t.Fatalf("coinop dev stopped: %v\n%s", err, logs.String())
		default:
		}
		m := serving.FindStringSubmatch(banner.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})

	// What the README says dev prints (Quick start, the fake store).
	for _, want := range []string{"player token:", "admin token:", "/v1/purchases", "/v1/wallet", "receipts mint", "/v1/receipts"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("coinop dev's banner has no %q, which the README says it prints:\n%s", want, banner.String())
		}
	}

	// One bash for all commands; each one's output and status go to files.
	results := filepath.Join(work, ".results")
	if err := os.Mkdir(results, 0o755); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("exec </dev/null\n")
	for i, c := range cmds {
		text := strings.ReplaceAll(c.text, readmeDevURL, base)
		for _, u := range urlInCommand.FindAllString(text, -1) {
			if u != base {
				t.Fatalf("README.md:%d: the command names %s; examples may only reach %s (make dev):\n%s", c.line, u, readmeDevURL, c.text)
			}
		}
		fmt.Fprintf(&script, "{\n%s\n} >%q 2>&1\necho $? >%q\n", text, filepath.Join(results, strconv.Itoa(i)), filepath.Join(results, strconv.Itoa(i)+".rc"))
	}
	home := filepath.Join(work, ".home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	sh := exec.CommandContext(runCtx, "bash", "--noprofile", "--norc", "-c", script.String())
	sh.Dir = work
	sh.Env = []string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + home, "LANG=C.UTF-8", "TERM=dumb",
		"COINOP_URL=" + base, "COINOP_DATABASE_URL=" + dbURL,
		"EDITOR=edit-catalog",
	}
	sh.WaitDelay = 5 * time.Second
	if out, err := sh.CombinedOutput(); err != nil {
		t.Errorf("bash: %v\n%s", err, out)
	}

	for i, c := range cmds {
		out, err := os.ReadFile(filepath.Join(results, strconv.Itoa(i)))
		rcText, rcErr := os.ReadFile(filepath.Join(results, strconv.Itoa(i)+".rc"))
		if err != nil || rcErr != nil {
			t.Errorf("README.md:%d: did not run (the walk stopped before it):\n%s", c.line, c.text)
			continue
		}
		rc := strings.TrimSpace(string(rcText))
		if !c.hasOut {
			if rc != "0" {
				t.Errorf("README.md:%d: exit status %s (a command with no shown output must succeed):\n%s\nit printed:\n%s", c.line, rc, c.text, indent(string(out)))
			}
			continue
		}
		want := strings.Join(c.shown, "\n")
		if where, ok := matchShown(want, string(out)); !ok {
			t.Errorf("README.md:%d: the output differs from what the README shows\ncommand:\n%s\nshown:\n%s\nprinted (exit status %s):\n%s\n%s",
				c.line, indent(c.text), indent(want), rc, indent(string(out)), where)
		}
	}

	checkAuditInvariantsListed(t, string(readme), base)
}

// matchShown reports whether out matches the shown text: whitespace ignored,
// … standing for any text. When it does not, it says where the two part.
func matchShown(shown, out string) (string, bool) {
	parts := strings.Split(squeeze(shown), placeholder)
	got := squeeze(out)
	pos := 0
	for i, p := range parts {
		var at int
		switch {
		case i == 0:
			if !strings.HasPrefix(got, p) {
				n := 0
				for n < len(p) && n < len(got) && p[n] == got[n] {
					n++
				}
				for !utf8Boundary(p, n) {
					n--
				}
				return partedAt(p, n, got, n), false
			}
			at = 0
		case i == len(parts)-1:
			if !strings.HasSuffix(got[pos:], p) {
				if k := strings.Index(got[pos:], p); k >= 0 {
					return fmt.Sprintf("the printed text goes on after the shown end %q: %q", p, ellipsize(got[pos+k+len(p):])), false
				}
				return parting(p, got, pos), false
			}
			at = len(got) - len(p)
		default:
			k := strings.Index(got[pos:], p)
			if k < 0 {
				return parting(p, got, pos), false
			}
			at = pos + k
		}
		pos = at + len(p)
	}
	if len(parts) == 1 && pos != len(got) {
		return fmt.Sprintf("the printed text goes on after the shown end: %q", ellipsize(got[pos:])), false
	}
	return "", true
}

// parting explains why the shown piece p is not in got from pos: it finds
// the longest start of p that is there and shows what follows it instead.
func parting(p, got string, pos int) string {
	best, bestAt := 0, pos
	for n := len(p); n > 0; n-- {
		if !utf8Boundary(p, n) {
			continue
		}
		if k := strings.Index(got[pos:], p[:n]); k >= 0 {
			best, bestAt = n, pos+k
			break
		}
	}
	return partedAt(p, best, got, bestAt+best)
}

// partedAt says that p[:n] was found and then p[n:] was shown where got[at:]
// was printed.
func partedAt(p string, n int, got string, at int) string {
	return fmt.Sprintf("they part (spaces ignored) after %q:\n  shown:   %q\n  printed: %q",
		ellipsizeLeft(p[:n]), ellipsize(p[n:]), ellipsize(got[at:]))
}

func utf8Boundary(s string, n int) bool { return n == len(s) || (s[n]&0xC0) != 0x80 }

func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func ellipsize(s string) string {
	if r := []rune(s); len(r) > 80 {
		return string(r[:80]) + "…"
	}
	return s
}

func ellipsizeLeft(s string) string {
	if r := []rune(s); len(r) > 40 {
		return "…" + string(r[len(r)-40:])
	}
	return s
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (nothing)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// buildCoinop builds this tree's coinop into dir.
func buildCoinop(t *testing.T, dir string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to build coinop for the README walk: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, "coinop"), "./cmd/coinop")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/coinop: %v\n%s", err, out)
	}
}

// writeEditor puts the README's edit of catalog.yaml ("sword from 500 to 400
// gold, add a bow") in dir as edit-catalog, the walk's $EDITOR.
func writeEditor(t *testing.T, dir string) {
	t.Helper()
	script := `#!/bin/sh
set -e
awk '
/^- id: sword$/ { sword = 1 }
sword && /amount: 500$/ { sub(/amount: 500$/, "amount: 400"); sword = 0; edited++ }
/^bundles:$/ {
	print "- id: bow"; print "  name: Short Bow"; print "  kind: durable"
	print "  prices:"; print "  - currency: gold"; print "    amount: 300"; edited++
}
{ print }
END { if (edited != 2) { print "edit-catalog: not the pulled demo catalog" > "/dev/stderr"; exit 1 } }
' "$1" >"$1.new"
mv "$1.new" "$1"
`
	if err := os.WriteFile(filepath.Join(dir, "edit-catalog"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkAuditInvariantsListed compares the README's list of audit checks (the
// money model's "Audit" bullet) with the names the server's audit returns.
func checkAuditInvariantsListed(t *testing.T, readme, base string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/v1/audit", nil)
	req.Header.Set("Authorization", "Bearer "+devAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var audit struct {
		Checks []struct {
			Name string `json:"name"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(body, &audit); err != nil || len(audit.Checks) == 0 {
		t.Fatalf("GET /admin/v1/audit: %d %s", resp.StatusCode, body)
	}
	var served []string
	for _, c := range audit.Checks {
		served = append(served, c.Name)
	}

	var listed []string
	in := false
	item := regexp.MustCompile("^  - `([a-z_]+)`:")
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "- **Audit.**"):
			in = true
		case in && strings.HasPrefix(l, "  - "):
			if m := item.FindStringSubmatch(l); m != nil {
				listed = append(listed, m[1])
			}
		case in && (strings.HasPrefix(l, "- ") || l == "" || strings.HasPrefix(l, "#")):
			in = false
		}
	}
	if strings.Join(listed, ",") != strings.Join(served, ",") {
		t.Errorf("the README's money model lists the audit checks\n  %s\nbut the server checks\n  %s", strings.Join(listed, ", "), strings.Join(served, ", "))
	}
	if n := len(served); !strings.Contains(squeeze(readme), squeeze("checks "+numberWord(n)+" invariants")) {
		t.Errorf("the README should say the audit checks %s invariants", numberWord(n))
	}
}

func numberWord(n int) string {
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"}
	if n < len(words) {
		return words[n]
	}
	return strconv.Itoa(n)
}

// The walk's matching rule, on its own.
func TestReadmeMatchingIgnoresSpacesAndTakesEllipsisForAnyText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, shown, printed string
		match                bool
	}{
		{"identical text", `{"a":1}`, `{"a":1}`, true},
		{"wrapped lines and indentation", "{\"a\":1,\n  \"b\":2}", `{"a":1,"b":2}`, true},
		{"CRLF headers", "HTTP/1.1 200 OK\n…\nEtag: \"x\"", "HTTP/1.1 200 OK\r\nDate: now\r\nEtag: \"x\"\r\n", true},
		{"an ellipsis for an id", `{"id":"…","n":1}`, `{"id":"01a2-b3","n":1}`, true},
		{"an ellipsis for nothing", `{"n":1…}`, `{"n":1}`, true},
		{"several ellipses in order", `a…c…e`, `abcde`, true},
		{"a different value", `{"gold":9800}`, `{"gold":9700}`, false},
		{"more printed than shown", `{"a":1}`, `{"a":1}{"b":2}`, false},
		{"less printed than shown", `{"a":1}{"b":2}`, `{"a":1}`, false},
		{"the end is anchored", `a…c`, `abcd`, false},
		{"the start is anchored", `b…`, `abc`, false},
		{"pieces in another order", `a…c…b`, `abca`, false},
		{"a piece shown twice, printed once", `a…b…b`, `ab`, false},
		{"nothing shown, nothing printed", ``, ``, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			where, ok := matchShown(c.shown, c.printed)
			if ok != c.match {
				t.Errorf("matchShown(%q, %q) = %v (%s), want %v", c.shown, c.printed, ok, where, c.match)
			}
			if !ok && where == "" {
				t.Errorf("a mismatch of %q and %q says nothing about where they part", c.shown, c.printed)
			}
		})
	}
}

// The walk's reading of blocks: commands, continuations, shown output,
// prose, remarks and skips.
func TestReadmeBlocksAreReadAsCommandsAndTheirShownOutput(t *testing.T) {
	t.Parallel()
	doc := "intro\n" +
		"```sh\n" +
		"# prose before the first command\n" +
		"echo one   # a remark\n" +
		"# one\n" +
		"\n" +
		"# prose after a blank line\n" +
		"printf 'a\\n' \\\n" +
		"  'b' |\n" +
		"  cat\n" +
		"# a\n" +
		"#\n" +
		"# b\n" +
		"true\n" +
		"```\n" +
		"<!-- readme-test: skip: needs a device -->\n" +
		"```sh\n" +
		"make dev\n" +
		"```\n" +
		"```yaml\n" +
		"a: 1\n" +
		"```\n"
	blocks := parseReadme(t, doc)
	if len(blocks) != 2 {
		t.Fatalf("%d blocks, want the 2 sh blocks: %+v", len(blocks), blocks)
	}
	want := []readmeCommand{
		{line: 4, text: "echo one   # a remark", shown: []string{"one"}, hasOut: true},
		{line: 8, text: "printf 'a\\n' \\\n  'b' |\n  cat", shown: []string{"a", "", "b"}, hasOut: true},
		{line: 14, text: "true"},
	}
	got := blocks[0].commands
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("commands\n%+v\nwant\n%+v", got, want)
	}
	if blocks[0].skip != "" || blocks[1].skip != "needs a device" {
		t.Errorf("skips %q and %q, want none and %q", blocks[0].skip, blocks[1].skip, "needs a device")
	}
}
