// Package toolwire is the Go client of toolwire, a gRPC sidecar that streams a model's answer
// and has the client run the model's tool calls.
//
// Dial a server, describe the tools with a JSON Schema and a ToolFunc, and range over Chat:
//
//	client, err := toolwire.Dial("127.0.0.1:50051")
//	if err != nil {
//		return err
//	}
//	defer client.Close()
//	weather := toolwire.MustTool("get_weather", "Current weather for a place.",
//		`{"type": "object", "properties": {"location": {"type": "string"}}}`,
//		func(ctx context.Context, args json.RawMessage) (string, error) {
//			return `{"sky": "sunny"}`, nil
//		})
//	request := toolwire.ChatRequest{
//		Model:    "scripted/weather",
//		Messages: []toolwire.Message{toolwire.UserMessage("What is the weather in Paris?")},
//		Tools:    []toolwire.Tool{weather},
//	}
//	for event, err := range client.Chat(ctx, request) {
//		if err != nil {
//			return err // a *toolwire.Error for a non-OK status
//		}
//		switch event := event.(type) {
//		case *toolwire.TextDelta:
//			fmt.Print(event.Text)
//		case *toolwire.Finish:
//			fmt.Println("\n", event.Reason, event.ToolsCalled)
//		}
//	}
//
// Client.Run does the same and returns only the summary (*Finish). Tools run concurrently, one
// goroutine per call; a returned error or a panic becomes an error result for the model.
// Client.Session lets the caller answer calls of tools without a Func (SendResult). The
// generated gRPC code is in the toolwire/v1 package; toolwiretest starts a real server for tests.
package toolwire
