/**
 * `effect-llm/testing`: what an application needs to test its own use of
 * effect-llm, the way the library tests itself.
 *
 * @since 0.1.0
 */

/**
 * A scripted `Llm` layer: replies, paced streams, tool calls and faults, with every call recorded.
 *
 * @since 0.1.0
 */
export * as ScriptedLlm from "./ScriptedLlm.js"

/**
 * A fake LLM provider on loopback speaking the real wire formats, with scripted replies and faults.
 *
 * @since 0.1.0
 */
export * as FakeProvider from "./FakeProvider.js"
