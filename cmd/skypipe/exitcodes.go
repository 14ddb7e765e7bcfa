package main

import (
	"fmt"
	"strings"
)

// exitCodes is the one table of skypipe's exit codes: --help prints it and
// README.md holds the same rows (a test checks that they agree). Codes 4 to
// 9 are kept for other outcomes of a receive.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{0, "done: sent or received whole, or the command did its work"},
	{exitFailure, "failed: stderr says why (satellite, network, output)"},
	{exitUsage, "usage: a bad flag, argument or pipe name; nothing was done"},
	{exitNotWhole, "not whole: the receiver wrote only part of an item (its tail, or up to where it broke); stderr says which bytes"},
	{exitTimeout, "--timeout passed with nothing received"},
	{exitInterrupted, "interrupted (SIGINT, Ctrl-C)"},
	{exitTerminated, "terminated (SIGTERM)"},
}

// exitCodesHelp is the table as --help prints it.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %-4d %s\n", e.code, e.meaning)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// exitCodesMarkdown is the table as README.md holds it.
func exitCodesMarkdown() string {
	var b strings.Builder
	b.WriteString("| code | meaning |\n| --- | --- |\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "| %d | %s |\n", e.code, strings.ReplaceAll(e.meaning, "|", `\|`))
	}
	return b.String()
}
