/**
 * Picks the backend the examples run against: a real one when its key or
 * server is configured, otherwise the project's fake provider server started
 * in-process with replies scripted by the example (and it says so).
 */
import { Console, Effect, Layer } from "effect"
import type { Llm } from "../../src/index.js"
import { Anthropic, Local, OpenAi } from "../../src/index.js"
import { FakeProvider } from "../../src/testing/index.js"

/** Which backend an example is talking to. */
export const describeBackend = (): string =>
  process.env.OPENAI_API_KEY
    ? "OpenAI (OPENAI_API_KEY)"
    : process.env.ANTHROPIC_API_KEY
    ? "Anthropic (ANTHROPIC_API_KEY)"
    : process.env.LLM_LOCAL_BASE_URL
    ? `the local server at ${process.env.LLM_LOCAL_BASE_URL}`
    : "the built-in fake provider (no key or server configured)"

/**
 * The real backend the environment configures (a key or a local server's
 * URL), or undefined when it configures none.
 */
export const environmentLlm = () =>
  process.env.OPENAI_API_KEY
    ? OpenAi.layerConfig()
    : process.env.ANTHROPIC_API_KEY
    ? Anthropic.layerConfig()
    : process.env.LLM_LOCAL_BASE_URL
    ? Local.layerConfig()
    : undefined

/**
 * The `Llm` for an example. Without configuration it serves `scripts` (one
 * reply per call, in order) from a fake provider on loopback.
 */
export const exampleLlm = (
  scripts: ReadonlyArray<FakeProvider.Script>
): Layer.Layer<Llm.Llm, never, never> => {
  const real = environmentLlm()
  const layer = real !== undefined ? real : Layer.unwrapScoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    server.enqueue(...scripts)
    yield* Console.log(`(no backend configured: using the fake provider at ${server.url})`)
    return Local.layer({ baseUrl: server.url, model: "fake-gpt-oss" })
  }))
  return layer.pipe(Layer.orDie)
}

/** Starts a fake provider for examples that build their own layers. */
export const fakeProvider = FakeProvider.make

export type { FakeProvider }
