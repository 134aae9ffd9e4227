/**
 * Every example and the demo run as a user would run them (tsx, a fresh
 * process, no keys), against the fake provider, and print what they promise.
 */
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Runs an example with every provider key and server variable removed. */
const run = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const env = { ...process.env }
    for (
      const name of ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "LLM_LOCAL_BASE_URL", "LLM_CONFIG"]
    ) delete env[name]
    execFile(
      process.execPath,
      ["--import", "tsx", file],
      { cwd: root, env, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${file} failed: ${error.message}\n${stdout}\n${stderr}`))
        else resolve(stdout)
      }
    )
  })

const expectations: ReadonlyArray<readonly [string, ReadonlyArray<string | RegExp>]> = [
  ["examples/basic_completion.ts", [
    "using the fake provider",
    "Answer: The capital of France is Paris.",
    /tokens: \d+/
  ]],
  ["examples/streaming.ts", ["The lighthouse keeper lit the lamp each night.", /\(\d+ chunks\)/]],
  ["examples/tool_calling.ts", [
    "Tool call: get_weather({\"location\":\"Paris\"})",
    "Tool result: {\"location\":\"Paris\"",
    "Answer: It's 18°C and partly cloudy in Paris. (2 model calls)"
  ]],
  ["examples/conversation_context.ts", [
    "Assistant: Nice to meet you, Alice!",
    "Assistant: Your name is Alice.",
    "Turns kept: 2"
  ]],
  ["examples/orchestrator.ts", [
    "🔊 Your timer is set for ten minutes.",
    "🔊 I'll let you know when it rings.",
    "History: system > user > assistant > tool > assistant > user > assistant"
  ]],
  ["examples/mcp_tools.ts", [
    /MCP server everything: \d+ tools over stdio \(pid \d+\)/,
    "🔧 get-sum → The sum of 2 and 3 is 5.",
    "🔊 Two plus three is five.",
    "🔧 set_timer → timer set for 5 minutes",
    "🔧 echo → Echo: Timer for 5 minutes",
    "🔊 Starting the long operation.",
    /🛑 Barge-in: the MCP call was cancelled after \d+ ms \(0 in flight\)/,
    "History: system > user > assistant > tool > assistant > user > assistant > tool > tool > assistant > user > assistant"
  ]],
  ["examples/speech_sink.ts", [
    "🔊 The solar system has eight planets.",
    "🔊 Mercury is closest to the Sun.",
    "Spoke 2 sentences"
  ]],
  ["examples/voice_turn.ts", [
    "🔊 Let me check that.",
    /\(get_weather answered in \d+ ms\)\n🔊 Hmm, one moment\.\n🔊 It is 4 degrees and raining in Oslo\./,
    "🔊 Yes, take an umbrella.",
    /first token \d+ ms, first chunk \d+ ms, first audio \d+ ms, \d+ output tokens, interrupted: false/
  ]],
  ["examples/custom_provider.ts", [
    "echo answered: Echo: hello, custom backend",
    "streamed in 4 pieces: Echo: streams work too"
  ]],
  ["examples/adaptive_fallback.ts", [
    "turn 1: openai answered",
    "local failed (LlmConnectionError)",
    "turn 5: openai answered",
    "local skipped (breaker open)"
  ]],
  ["examples/telemetry.ts", [
    "--- spans, as the console exporter prints them ---",
    /session \([\d.]+ ms\)\n {2}└ chat fake-gpt-oss \([\d.]+ ms\)\n {6}gen_ai\.operation\.name="chat"/,
    "gen_ai.request.stream=true",
    /gen_ai\.response\.time_to_first_chunk=[\d.]+/,
    "  └ execute_tool get_weather",
    "gen_ai.response.finish_reasons=[\"tool_calls\"]",
    "gen_ai.usage.input_tokens=98",
    "name: 'gen_ai.client.operation.duration'",
    "name: 'gen_ai.client.token.usage'",
    "name: 'gen_ai.client.operation.time_to_first_chunk'",
    "'effect_llm.outcome': 'success'"
  ]],
  ["examples/demo.ts", [
    "🤖 Hello Sam! How can I help you today?",
    "backend: anthropic (after local down)",
    "[calling get_weather({\"city\":\"Lisbon\"})] It's 12°C with light rain in Lisbon.",
    "backend: anthropic (after local skipped)",
    /first token: [\d.]+ ms/,
    "Conversation: system > user > assistant > user > assistant > tool > assistant > user > assistant"
  ]]
]

describe("examples", () => {
  for (const [file, expected] of expectations) {
    it.concurrent(`${file} runs against the fake provider`, async () => {
      const output = await run(file)
      for (const line of expected) {
        if (typeof line === "string") expect(output).toContain(line)
        else expect(output).toMatch(line)
      }
      expect(output).not.toMatch(/FiberFailure|UnknownException|\n\s+at /)
    }, 90_000)
  }
})
