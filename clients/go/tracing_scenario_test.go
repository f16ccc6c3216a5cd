package toolwire_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	toolwire "github.com/toolwire/toolwire/clients/go"
	"github.com/toolwire/toolwire/clients/go/toolwiretest"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestAToolSpanJoinsTheServerTrace runs a tool against a server that traces (its console
// exporter): the client's tool span is a child of the server's span whose context came in the
// ToolRequest, and the tool's ctx carries the tool span.
func TestAToolSpanJoinsTheServerTrace(t *testing.T) {
	server := toolwiretest.Start(t, toolwiretest.WithEnv("OTEL_TRACES_EXPORTER=console"))
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	client, err := toolwire.Dial(server.Target, toolwire.WithTracerProvider(provider))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })

	var mutex sync.Mutex
	var inTool trace.SpanContext
	weather := getWeather(func(ctx context.Context, args json.RawMessage) (string, error) {
		mutex.Lock()
		inTool = trace.SpanContextFromContext(ctx)
		mutex.Unlock()
		return sunnyWeather(ctx, args)
	})
	events := collect(t, client, weatherRequest("scripted/weather", weather))
	requests := only[*toolwire.ToolRequest](events)
	if len(requests) != 1 || requests[0].TraceContext["traceparent"] == "" {
		t.Fatalf("tool requests = %+v, want one with a traceparent from a tracing server", requests)
	}
	serverSpan := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(requests[0].TraceContext)))
	if !serverSpan.IsValid() {
		t.Fatalf("the ToolRequest's trace context %v is not a valid W3C context", requests[0].TraceContext)
	}

	spans := recorder.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d client spans ended, want 1", len(spans))
	}
	span := spans[0]
	parent := span.Parent()
	if span.Name() != "execute_tool get_weather" || !parent.IsRemote() || parent.SpanID() != serverSpan.SpanID() || parent.TraceID() != serverSpan.TraceID() {
		t.Errorf("span %q with parent %s/%s (remote %v), want execute_tool get_weather under the server's %s/%s",
			span.Name(), parent.TraceID(), parent.SpanID(), parent.IsRemote(), serverSpan.TraceID(), serverSpan.SpanID())
	}
	if span.SpanContext().TraceID() != serverSpan.TraceID() {
		t.Errorf("the tool span is in trace %s, want the server's %s", span.SpanContext().TraceID(), serverSpan.TraceID())
	}
	mutex.Lock()
	defer mutex.Unlock()
	if !inTool.Equal(span.SpanContext()) {
		t.Errorf("the tool's ctx carries span %s, want the tool span %s", inTool.SpanID(), span.SpanContext().SpanID())
	}
}
