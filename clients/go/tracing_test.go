package toolwire

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	serverTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	serverSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + serverTraceID + "-" + serverSpanID + "-01"
)

// recording returns a tracer whose ended spans the recorder keeps.
func recording(t *testing.T) (trace.Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	return provider.Tracer("test"), recorder
}

// onlySpan returns the one span the recorder holds.
func onlySpan(t *testing.T, recorder *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := recorder.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	return spans[0]
}

func attributesOf(span sdktrace.ReadOnlySpan) map[attribute.Key]string {
	attributes := make(map[attribute.Key]string)
	for _, each := range span.Attributes() {
		attributes[each.Key] = each.Value.Emit()
	}
	return attributes
}

func toolRequest(traceContext map[string]string) *ToolRequest {
	return &ToolRequest{ToolCallID: "call_1", Name: "get_weather", Arguments: json.RawMessage(`{}`), TraceContext: traceContext}
}

func TestAToolSpanIsAChildOfTheServerSpan(t *testing.T) {
	tracer, recorder := recording(t)
	var inTool trace.SpanContext
	content, isError := traceTool(t.Context(), tracer,
		toolRequest(map[string]string{"traceparent": traceparent, "tracestate": "vendor=value"}),
		func(ctx context.Context, _ json.RawMessage) (string, error) {
			inTool = trace.SpanContextFromContext(ctx)
			return "sunny", nil
		})
	if content != "sunny" || isError {
		t.Errorf("traceTool = %q, %v", content, isError)
	}
	span := onlySpan(t, recorder)
	if span.Name() != "execute_tool get_weather" || span.SpanKind() != trace.SpanKindInternal {
		t.Errorf("span %q of kind %v, want execute_tool get_weather, internal", span.Name(), span.SpanKind())
	}
	parent := span.Parent()
	if parent.TraceID().String() != serverTraceID || parent.SpanID().String() != serverSpanID || !parent.IsRemote() {
		t.Errorf("parent = %s/%s (remote %v), want the traceparent's %s/%s, remote", parent.TraceID(), parent.SpanID(), parent.IsRemote(), serverTraceID, serverSpanID)
	}
	if span.SpanContext().TraceID().String() != serverTraceID {
		t.Errorf("trace id %s, want %s", span.SpanContext().TraceID(), serverTraceID)
	}
	if span.SpanContext().TraceState().Get("vendor") != "value" {
		t.Errorf("trace state %q, want the server's vendor=value", span.SpanContext().TraceState())
	}
	if !inTool.Equal(span.SpanContext()) {
		t.Errorf("the tool's ctx carries span %s, want the tool span %s", inTool.SpanID(), span.SpanContext().SpanID())
	}
	want := map[attribute.Key]string{
		"gen_ai.operation.name": "execute_tool",
		"gen_ai.tool.name":      "get_weather",
		"gen_ai.tool.call.id":   "call_1",
		"gen_ai.tool.type":      "function",
	}
	if got := attributesOf(span); len(got) != len(want) || !mapsEqual(got, want) {
		t.Errorf("attributes = %v, want %v", got, want)
	}
	if span.Status().Code != codes.Unset {
		t.Errorf("status = %v, want unset", span.Status())
	}
}

func mapsEqual(a, b map[attribute.Key]string) bool {
	for key, value := range a {
		if b[key] != value {
			return false
		}
	}
	return len(a) == len(b)
}

func TestAFailingToolMarksItsSpan(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes: the description is cut at a character boundary
	for name, function := range map[string]ToolFunc{
		"error": func(context.Context, json.RawMessage) (string, error) { return "", errors.New(long) },
		"panic": func(context.Context, json.RawMessage) (string, error) { panic(long) },
	} {
		t.Run(name, func(t *testing.T) {
			tracer, recorder := recording(t)
			_, isError := traceTool(t.Context(), tracer, toolRequest(map[string]string{"traceparent": traceparent}), function)
			if !isError {
				t.Fatal("the tool's failure is not an error result")
			}
			span := onlySpan(t, recorder)
			if got := attributesOf(span)["error.type"]; got != "tool_error" {
				t.Errorf("error.type = %q, want tool_error", got)
			}
			status := span.Status()
			if status.Code != codes.Error || len(status.Description) > errorDescriptionLimit || !strings.HasSuffix(status.Description, "é") {
				t.Errorf("status = %v %q, want error with at most %d bytes of the result", status.Code, status.Description, errorDescriptionLimit)
			}
		})
	}
}

func TestWithoutTraceContextTheToolSpanFollowsCtx(t *testing.T) {
	tracer, recorder := recording(t)
	succeed := func(context.Context, json.RawMessage) (string, error) { return "ok", nil }

	traceTool(t.Context(), tracer, toolRequest(nil), succeed)
	if root := onlySpan(t, recorder); root.Parent().IsValid() {
		t.Errorf("with no trace context and no span in ctx, parent = %s, want none (a root span)", root.Parent().SpanID())
	}

	ctx, caller := tracer.Start(t.Context(), "caller")
	traceTool(ctx, tracer, toolRequest(map[string]string{}), succeed)
	traceTool(ctx, tracer, toolRequest(map[string]string{"traceparent": "not a traceparent"}), succeed)
	caller.End()
	for _, span := range recorder.Ended()[1:3] {
		if span.Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("with no (valid) trace context, parent = %s, want the span in ctx %s", span.Parent().SpanID(), caller.SpanContext().SpanID())
		}
	}

	// The server's context wins over the span in ctx.
	traceTool(ctx, tracer, toolRequest(map[string]string{"traceparent": traceparent}), succeed)
	if parent := recorder.Ended()[4].Parent(); parent.SpanID().String() != serverSpanID {
		t.Errorf("parent = %s, want the server's %s", parent.SpanID(), serverSpanID)
	}
}

func TestTheTracerProviderIsTheGlobalOneUnlessGiven(t *testing.T) {
	globalRecorder := tracetest.NewSpanRecorder()
	global := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(globalRecorder))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(global)
	t.Cleanup(func() { otel.SetTracerProvider(previous); _ = global.Shutdown(context.Background()) })
	givenRecorder := tracetest.NewSpanRecorder()
	given := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(givenRecorder))
	t.Cleanup(func() { _ = given.Shutdown(context.Background()) })

	succeed := func(context.Context, json.RawMessage) (string, error) { return "ok", nil }
	traceTool(t.Context(), NewClient(nil).tracer(), toolRequest(nil), succeed)
	dialed, err := Dial("127.0.0.1:1", WithTracerProvider(given)) // a ClientOption is a grpc.DialOption too
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	traceTool(t.Context(), dialed.tracer(), toolRequest(nil), succeed)

	if len(globalRecorder.Ended()) != 1 || len(givenRecorder.Ended()) != 1 {
		t.Fatalf("global provider: %d spans, given provider: %d; want 1 and 1", len(globalRecorder.Ended()), len(givenRecorder.Ended()))
	}
	if scope := givenRecorder.Ended()[0].InstrumentationScope().Name; scope != instrumentationName {
		t.Errorf("instrumentation scope %q, want %q", scope, instrumentationName)
	}
}

func TestContextWithToolTraceGivesTheServerSpanAsParent(t *testing.T) {
	ctx := ContextWithToolTrace(t.Context(), toolRequest(map[string]string{"traceparent": traceparent}))
	parent := trace.SpanContextFromContext(ctx)
	if parent.TraceID().String() != serverTraceID || parent.SpanID().String() != serverSpanID || !parent.IsRemote() {
		t.Errorf("span context = %s/%s (remote %v), want the traceparent's, remote", parent.TraceID(), parent.SpanID(), parent.IsRemote())
	}
	if empty := ContextWithToolTrace(t.Context(), toolRequest(nil)); trace.SpanContextFromContext(empty).IsValid() {
		t.Error("without trace context, ctx gained a span context")
	}
}
