package toolwire_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toolwire "github.com/toolwire/toolwire/clients/go"
	"github.com/toolwire/toolwire/clients/go/toolwiretest"
)

// Scenarios beyond the Python suite's first eight: manual mode, timeouts, panics, history,
// models and load.

func manualModeAnswersToolRequestsByHand(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	session := client.Session(ctx, weatherRequest("scripted/weather", getWeather(nil)))
	var last toolwire.Event
	for event, err := range session.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if request, isRequest := event.(*toolwire.ToolRequest); isRequest {
			if err := session.SendResult(request.ToolCallID, "cloudy, by hand", false); err != nil {
				t.Fatal(err)
			}
			if err := session.SendResult(request.ToolCallID, "twice", false); err == nil {
				t.Error("answering the same call twice succeeded")
			}
		}
		last = event
	}
	finish, isFinish := last.(*toolwire.Finish)
	if !isFinish || finish.Messages[1].Content != "cloudy, by hand" {
		t.Errorf("last event = %#v, want a Finish with the hand-written result", last)
	}
}

func chatRefusesAToolWithoutAFunction(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	_, err := run(t, client, weatherRequest("scripted/weather", getWeather(nil)))
	if err == nil || !strings.Contains(err.Error(), "has no Func") {
		t.Errorf("error = %v, want one about the missing Func", err)
	}
}

func aToolSlowerThanTheTimeoutIsAbandoned(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	blocking := getWeather(func(ctx context.Context, _ json.RawMessage) (string, error) {
		<-ctx.Done() // cancelled once the chat finishes
		return "late", nil
	})
	events := collect(t, client, weatherRequest("scripted/weather", blocking), toolwire.WithToolTimeout(300*time.Millisecond))
	abandoned := only[*toolwire.ToolCallAbandoned](events)
	if len(abandoned) != 1 || abandoned[0].ToolCallID != "call_1" {
		t.Errorf("abandoned = %+v, want call_1", abandoned)
	}
	if sent := only[*toolwire.ToolResultSent](events); len(sent) != 0 {
		t.Errorf("a late result was sent: %+v", sent)
	}
	finish := finishOf(t, events)
	if !finish.Messages[1].IsError || finish.Reason != toolwire.FinishStop {
		t.Errorf("finish = %s with tool message %+v", finish.Reason, finish.Messages[1])
	}
}

func aPanickingToolBecomesAnErrorResult(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	panicking := getWeather(func(context.Context, json.RawMessage) (string, error) { panic("no forecast today") })
	events := collect(t, client, weatherRequest("scripted/weather", panicking))
	sent := only[*toolwire.ToolResultSent](events)
	if len(sent) != 1 || !sent[0].IsError || !strings.Contains(sent[0].Content, "no forecast today") {
		t.Errorf("results sent = %+v, want one error result with the panic value", sent)
	}
	if finish := finishOf(t, events); finish.Reason != toolwire.FinishStop {
		t.Errorf("reason = %s, want stop", finish.Reason)
	}
}

func finishMessagesContinueTheConversation(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	first := mustRun(t, client, toolwire.ChatRequest{
		Model:    "scripted/weather",
		Messages: []toolwire.Message{toolwire.UserMessage("Weather in Paris?")},
		Tools:    []toolwire.Tool{getWeather(sunnyWeather)},
	})
	history := append([]toolwire.Message{toolwire.UserMessage("Weather in Paris?")}, first.Messages...)
	history = append(history, toolwire.UserMessage("Thanks, and now echo this"))
	second := mustRun(t, client, toolwire.ChatRequest{Model: "scripted/echo", Messages: history})
	if second.Text != "Thanks, and now echo this" {
		t.Errorf("second answer = %q", second.Text)
	}
}

func listModels(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	models, err := client.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, model := range models {
		ids[model.ID] = true
	}
	for _, want := range []string{"scripted/echo", "scripted/weather", "scripted/slow"} {
		if !ids[want] {
			t.Errorf("ListModels lacks %s: %v", want, models)
		}
	}
}

func fiftyConcurrentChats(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	var chats sync.WaitGroup
	failures := make(chan error, 50)
	for range 50 {
		chats.Go(func() {
			finish, err := run(t, client, weatherRequest("scripted/parallel", getWeather(sunnyWeather), getTime))
			if err == nil && (finish.Reason != toolwire.FinishStop || fmt.Sprint(finish.ToolsCalled) != "[get_weather get_time]") {
				err = fmt.Errorf("finish = %s with tools %v", finish.Reason, finish.ToolsCalled)
			}
			failures <- err
		})
	}
	chats.Wait()
	close(failures)
	for err := range failures {
		if err != nil {
			t.Error(err)
		}
	}
}

// pacedText is what scripted/paced says, in pacedChunks chunks 40 ms apart (tests/scripts/paced.json).
const (
	pacedText   = "The quick brown fox jumps over the lazy dog, twice."
	pacedChunks = 10
)

func aTextWindowSendsFewerLargerTextDeltas(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	events := collect(t, client, weatherRequest("scripted/paced"), toolwire.WithTextCoalesceWindow(200*time.Millisecond))
	var joined strings.Builder
	deltas := only[*toolwire.TextDelta](events)
	for _, delta := range deltas {
		joined.WriteString(delta.Text)
	}
	if joined.String() != pacedText || finishOf(t, events).Text != pacedText {
		t.Errorf("text = %q, want %q", joined.String(), pacedText)
	}
	if len(deltas) >= pacedChunks {
		t.Errorf("%d TextDelta events for %d chunks: the window merged nothing", len(deltas), pacedChunks)
	}
}
