/**
 * The get-weather example: stream an answer, run the model's tool call locally, print the summary.
 *
 * npm start -- [--target HOST:PORT] [--model scripted/weather]
 *
 * The target defaults to $TOOLWIRE_TARGET, else 127.0.0.1:50051 (where `make run` listens).
 *
 * @module
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { createClient, type FinishEvent, type Tools } from "@toolwire/client";

/** The one tool: the current weather for a place (always sunny here). */
export const tools: Tools = {
  get_weather: {
    description: "Current weather for a place.",
    parameters: {
      type: "object",
      properties: { location: { type: "string", description: 'A city name, e.g. "Paris".' } },
      required: ["location"],
    },
    run: ({ location }: { location: string }) => ({ location, sky: "sunny", celsius: 21 }),
  },
};

/** Runs one chat against `target` and prints what happens with `write`; resolves to the summary. */
export async function main(
  target: string,
  model: string,
  write: (text: string) => void = (text) => process.stdout.write(text),
): Promise<FinishEvent> {
  const client = createClient(target);
  try {
    for await (const event of client.chat({ model, prompt: "What is the weather in Paris?", tools })) {
      switch (event.type) {
        case "text":
          write(event.text);
          break;
        case "toolRequest":
          write(`\n[tool] ${event.name}(${JSON.stringify(event.arguments)})\n`);
          break;
        case "toolResultSent":
          write(`[tool] -> ${event.content}\n`);
          break;
        case "finish":
          write(
            `\n[done] ${event.reason}: ${event.rounds} model calls, tools [${event.toolsCalled.join(", ")}], ` +
              `${event.chunksReceived} chunks, ${Math.round(event.durationMs)} ms\n`,
          );
          return event;
      }
    }
  } finally {
    client.close();
  }
  throw new Error("the chat ended without a finish event");
}

/** The target and model from the command line and $TOOLWIRE_TARGET. */
export function parseCommandLine(args: string[], env: NodeJS.ProcessEnv = process.env): { target: string; model: string } {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string", default: env.TOOLWIRE_TARGET ?? "127.0.0.1:50051" },
      model: { type: "string", default: "scripted/weather" },
    },
  });
  return { target: values.target, model: values.model };
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { target, model } = parseCommandLine(process.argv.slice(2));
  main(target, model).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
