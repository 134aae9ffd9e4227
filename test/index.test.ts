import { describe, expect, it } from "@effect/vitest"
import * as EffectLlm from "../src/index.js"

describe("the public barrel", () => {
  it("exports the modules users and the examples rely on", () => {
    for (const name of ["Llm", "Message", "Errors", "LlmStream", "OpenAi", "OpenRouter", "Local", "Retry"] as const) {
      expect(EffectLlm[name]).toBeTypeOf("object")
    }
    expect(EffectLlm.Llm.Llm.key).toBe("effect-llm/Llm")
    expect(EffectLlm.Message.user("hi").role).toBe("user")
    expect(EffectLlm.Errors.isTransient(new EffectLlm.LlmProviderError({ provider: "p", model: "m", message: "x" })))
      .toBe(true)
    expect(typeof EffectLlm.OpenAi.layer).toBe("function")
    expect(typeof EffectLlm.Local.health).toBe("function")
  })
})
