//go:build wssafe_probe

// Command coderdirect prints "direct" when an Endpoint built with New
// writes data frames itself, as it should with the coder/websocket
// version of go.mod, and "coder" when it falls back to coder's Conn.Write.
// TestCoderDirectInRealBinary builds it with -tags wssafe_probe.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/wssafe/wssafe"
)

func main() {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { return nil }), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if wssafe.ProbeDirect(ep) {
		fmt.Println("direct")
	} else {
		fmt.Println("coder")
	}
}
