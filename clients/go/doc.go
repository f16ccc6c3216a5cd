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
//
// Message size: the Finish event (ChatFinish) repeats every message the chat appended, tool
// results included, so it can be larger than gRPC's default receive limit of 4 MiB. A client
// made by Dial accepts messages up to DefaultMaxReceiveMessageBytes (64 MiB);
// WithMaxReceiveMessageBytes changes that. NewClient keeps the limit of the *grpc.ClientConn you
// bring: dial it with grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(...)), or pass
// WithMaxReceiveMessageBytes to NewClient.
//
// Tracing: each tool with a Func runs inside an OpenTelemetry span "execute_tool {name}" (kind
// internal; attributes gen_ai.operation.name "execute_tool", gen_ai.tool.name,
// gen_ai.tool.call.id and gen_ai.tool.type "function"; on an error result error.type
// "tool_error" and status Error), and the ctx given to the ToolFunc carries it, so the tool's
// own spans and instrumented calls nest under it. Its parent is the server's span for the call,
// read from ToolRequest.TraceContext with the W3C propagator (propagation.TraceContext; the
// server always sends W3C, so the application's global propagator is not consulted); when the
// server does not trace, the parent is whatever span is in the ctx given to Chat, Run or
// Session, and with none the tool span is a root. Spans come from OpenTelemetry's global tracer
// provider, or from the one given with WithTracerProvider; the package uses only the
// OpenTelemetry API, so until the application installs an SDK this costs next to nothing. For a
// tool without a Func, ContextWithToolTrace gives the same parent for a span of your own.
package toolwire
