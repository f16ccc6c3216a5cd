package toolwire_test

import (
	"context"
	"encoding/json"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	toolwire "github.com/toolwire/toolwire/clients/go"
	"github.com/toolwire/toolwire/clients/go/toolwiretest"
)

// breakingOutEarlyLeaksNoGoroutine stops ranging while a tool is still running: Chat must
// cancel the tool, wait for it, and leave no goroutine of its own behind.
func breakingOutEarlyLeaksNoGoroutine(t *testing.T, client *toolwire.Client, _ *toolwiretest.Server) {
	mustRun(t, client, weatherRequest("scripted/weather", getWeather(sunnyWeather))) // settles the connection
	before := settledGoroutineCount(0)                                               // the count once the last chat's goroutines are gone

	toolStarted := make(chan struct{})
	var toolReturned atomic.Bool
	blocking := getWeather(func(ctx context.Context, _ json.RawMessage) (string, error) {
		close(toolStarted)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a tool that takes a moment to clean up
		toolReturned.Store(true)
		return "", ctx.Err()
	})
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	for event, err := range client.Chat(ctx, weatherRequest("scripted/weather", blocking)) {
		if err != nil {
			t.Fatal(err)
		}
		if _, isRequest := event.(*toolwire.ToolRequest); isRequest {
			select {
			case <-toolStarted:
			case <-ctx.Done():
			}
			break
		}
	}
	if !toolReturned.Load() {
		t.Error("the loop ended while its tool was still running")
	}
	if after := settledGoroutineCount(before); after > before {
		buffer := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the chat, %d after it; stacks:\n%s", before, after, buffer[:runtime.Stack(buffer, true)])
	}
}

// settledGoroutineCount waits (at most a second) for the goroutine count to drop to want, and
// returns it: gRPC ends a finished or cancelled stream's goroutines shortly after.
func settledGoroutineCount(want int) int {
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}
