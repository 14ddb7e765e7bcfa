package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
	mangokong "github.com/alecthomas/mango-kong"
	"github.com/muesli/roff"
)

// manFlag prints the man page, generated from the command line's model,
// and exits: skypipe --man > skypipe.1; man ./skypipe.1.
type manFlag bool

// BeforeApply prints the page before any command runs.
func (m manFlag) BeforeApply(app *kong.Kong) error {
	fmt.Fprint(app.Stdout, manPage(app.Model))
	app.Exit(0)
	return nil
}

// manPage is skypipe's man page (section 1), in roff.
func manPage(app *kong.Application) string {
	withoutHidden(app.Node)
	long := app.Help
	app.Help = "named pipes in the sky" // the page's NAME line and header
	page := mangokong.NewManPage(1, app)
	page.WithLongDescription(manParagraphs(long + "\n\n" +
		"Each command's own help, with examples, is 'skypipe COMMAND --help'."))
	page.WithSection("Environment", environment(app.Node))
	page.WithSection("Files", strings.Join([]string{
		"$XDG_CONFIG_HOME/skypipe/token: the local satellite's token (0600)",
		"$XDG_CONFIG_HOME/skypipe/local.json: where the local satellite listens, and its pid (0600)",
		"$XDG_CONFIG_HOME/skypipe/satellite.json: the remote satellite 'skypipe setup' set up (0600)",
		"$XDG_DATA_HOME/skypipe/store/: the local satellite's store of kept items",
		"$XDG_DATA_HOME/skypipe/satellite.log: the local satellite's log",
	}, "\n"))
	page.WithSection("See also", "nats-server(8), the README at https://github.com/skypipe/skypipe")
	return page.Build(roff.NewDocument())
}

// withoutHidden drops hidden flags from the model (mango-kong lists every
// flag), and the commands' long help, which mango-kong would print as
// their usage line; the process exits right after the page is printed.
func withoutHidden(n *kong.Node) {
	n.Flags = slices.DeleteFunc(slices.Clone(n.Flags), func(f *kong.Flag) bool { return f.Hidden })
	if n.Parent != nil {
		n.Detail = ""
	}
	for _, c := range n.Children {
		withoutHidden(c)
	}
}

// manParagraphs turns help text into mango's form, one paragraph a line:
// wrapped lines are joined, indented lines (examples, tables) stay lines.
func manParagraphs(help string) string {
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(help), "\n\n") {
		lines := strings.Split(para, "\n")
		if strings.HasPrefix(lines[len(lines)-1], " ") {
			for _, l := range lines {
				out = append(out, strings.TrimSpace(l))
			}
			continue
		}
		out = append(out, strings.Join(lines, " "))
	}
	return strings.Join(out, "\n")
}

// environment lists the variables flags read, with their flags.
func environment(root *kong.Node) string {
	seen := map[string]bool{}
	var lines []string
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		for _, f := range n.Flags {
			for _, env := range f.Envs {
				if seen[env] {
					continue
				}
				seen[env] = true
				lines = append(lines, fmt.Sprintf("%s: %s--%s", env, path, f.Name))
			}
		}
		for _, c := range n.Children {
			walk(c, path+c.Name+" ")
		}
	}
	walk(root, "")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
