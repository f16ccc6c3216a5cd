package toolwire_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	toolwire "github.com/toolwire/toolwire/clients/go"
	"github.com/toolwire/toolwire/clients/go/toolwiretest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// Scenarios of a ChatFinish larger than gRPC's default receive limit of 4 MiB.

const (
	mebibyte = 1 << 20
	// pageCharacters is the size of each read_page result: under the server's
	// max_tool_result_bytes (1 MiB) and max_request_bytes (4 MiB), while the five pages of
	// scripted/big_results make a ChatFinish over 4 MiB.
	pageCharacters = 1_000_000
)

// readPage returns about 1 MB of text for the page asked for.
var readPage = toolwire.MustTool("read_page", "One page of a long document.",
	`{"type": "object", "properties": {"page": {"type": "integer"}}, "required": ["page"]}`,
	func(_ context.Context, args json.RawMessage) (string, error) {
		var arguments struct{ Page int }
		if err := json.Unmarshal(args, &arguments); err != nil {
			return "", err
		}
		prefix := fmt.Sprintf("page %d: ", arguments.Page)
		return prefix + strings.Repeat("x", pageCharacters-len(prefix)), nil
	})

var bigResultsRequest = toolwire.ChatRequest{
	Model:    "scripted/big_results",
	Messages: []toolwire.Message{toolwire.UserMessage("Read the document.")},
	Tools:    []toolwire.Tool{readPage},
}

func aFinishOver4MiBArrives(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	finish := mustRun(t, client, bigResultsRequest)
	if finish.Reason != toolwire.FinishStop || finish.Text != "Read five pages." || finish.Rounds != 6 {
		t.Errorf("finish = %s, %q in %d rounds; want stop, \"Read five pages.\" in 6", finish.Reason, finish.Text, finish.Rounds)
	}
	var pages []string
	total := 0
	for _, message := range finish.Messages {
		if message.Role == toolwire.RoleTool {
			pages = append(pages, message.Content[:strings.Index(message.Content, ":")])
			total += len(message.Content)
			if len(message.Content) != pageCharacters {
				t.Errorf("the result of %s has %d bytes, want %d", message.ToolCallID, len(message.Content), pageCharacters)
			}
		}
	}
	equal(t, "pages in the finish", pages, []string{"page 1", "page 2", "page 3", "page 4", "page 5"})
	if total <= 4*mebibyte {
		t.Errorf("the tool results add up to %d bytes, want over 4 MiB", total)
	}
}

// expectResourceExhausted runs scripted/big_results on client and wants a ResourceExhausted *Error.
func expectResourceExhausted(t *testing.T, client *toolwire.Client) {
	t.Helper()
	_, err := run(t, client, bigResultsRequest)
	var typed *toolwire.Error
	if !errors.As(err, &typed) || typed.Code != codes.ResourceExhausted || !strings.Contains(typed.Message, "larger than max") {
		t.Errorf("error = %v, want a ResourceExhausted *toolwire.Error about the message size", err)
	}
}

func aFinishOverTheReceiveLimitIsResourceExhausted(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	small, err := toolwire.Dial(server.Target, toolwire.WithMaxReceiveMessageBytes(4*mebibyte))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	expectResourceExhausted(t, small)
}

func aClientOnYourOwnConnectionTakesTheLimitOption(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	conn, err := grpc.NewClient(server.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expectResourceExhausted(t, toolwire.NewClient(conn)) // the connection's own 4 MiB
	raised := toolwire.NewClient(conn, toolwire.WithMaxReceiveMessageBytes(toolwire.DefaultMaxReceiveMessageBytes))
	if finish := mustRun(t, raised, bigResultsRequest); len(finish.Messages) != 11 {
		t.Errorf("the finish has %d messages, want 11 (5 calls, 5 results, the answer)", len(finish.Messages))
	}
}
