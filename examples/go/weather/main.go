// Command weather is the get-weather example: it streams an answer, runs the model's tool call
// locally and prints the summary.
//
//	go run . [--target HOST:PORT] [--model scripted/weather]
//
// The target defaults to $TOOLWIRE_TARGET, else 127.0.0.1:50051 (where `make run` listens).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	toolwire "github.com/toolwire/toolwire/clients/go"
)

// getWeather is the tool the model calls.
var getWeather = toolwire.MustTool(
	"get_weather",
	"Current weather for a place.",
	`{"type": "object", "properties": {"location": {"type": "string", "description": "A city name, e.g. \"Paris\"."}}, "required": ["location"]}`,
	func(_ context.Context, args json.RawMessage) (string, error) {
		var arguments struct {
			Location string `json:"location"`
		}
		if err := json.Unmarshal(args, &arguments); err != nil {
			return "", err
		}
		weather, err := json.Marshal(struct {
			Location string `json:"location"`
			Sky      string `json:"sky"`
			Celsius  int    `json:"celsius"`
		}{arguments.Location, "sunny", 21})
		return string(weather), err
	},
)

// run runs one chat, prints what happens to out and returns the summary.
func run(ctx context.Context, target, model string, out io.Writer) (*toolwire.Finish, error) {
	client, err := toolwire.Dial(target)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	request := toolwire.ChatRequest{
		Model:    model,
		Messages: []toolwire.Message{toolwire.UserMessage("What is the weather in Paris?")},
		Tools:    []toolwire.Tool{getWeather},
	}
	for event, err := range client.Chat(ctx, request) {
		if err != nil {
			return nil, err
		}
		switch event := event.(type) {
		case *toolwire.TextDelta:
			fmt.Fprint(out, event.Text)
		case *toolwire.ToolRequest:
			fmt.Fprintf(out, "\n[tool] %s(%s)\n", event.Name, event.Arguments)
		case *toolwire.ToolResultSent:
			fmt.Fprintf(out, "[tool] -> %s\n", event.Content)
		case *toolwire.Finish:
			fmt.Fprintf(out, "\n[done] %s: %d model calls, tools %v, %d chunks, %.0f ms\n",
				event.Reason, event.Rounds, event.ToolsCalled, event.ChunksReceived, event.Duration.Seconds()*1000)
			return event, nil
		}
	}
	return nil, errors.New("the chat ended without a finish event")
}

func main() {
	defaultTarget := os.Getenv("TOOLWIRE_TARGET")
	if defaultTarget == "" {
		defaultTarget = "127.0.0.1:50051"
	}
	target := flag.String("target", defaultTarget, "the toolwire server, host:port")
	model := flag.String("model", "scripted/weather", "the model, provider/model-name")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, *target, *model, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "weather:", err)
		stop()
		os.Exit(1)
	}
}
