/** The fake provider server, from `effect-llm/testing`, where it now lives. */
export * from "../../src/testing/FakeProvider.js"
