/**
 * `LlmStream.sentences` as a speech synthesiser needs it: boundaries from
 * `Intl.Segmenter` in several languages, short sentences merged, long ones
 * split at a soft boundary, an early first chunk, the places a sentence
 * never ends (decimals, abbreviations, URLs, lists, code), markdown stripped
 * when `speakable`, and the same chunks under every way of cutting the text.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { SpokenText } from "../src/internal/spokenText.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import { StreamEvent } from "../src/Stream.js"
import { withServer } from "./support/replies.js"

/** The text cut into deltas at these code point offsets. */
const cutAt = (text: string, cuts: ReadonlyArray<number>): ReadonlyArray<string> => {
  const points = Array.from(text)
  const at = [...new Set(cuts.filter((cut) => cut > 0 && cut < points.length))].sort((a, b) => a - b)
  const pieces: Array<string> = []
  let from = 0
  for (const cut of [...at, points.length]) {
    pieces.push(points.slice(from, cut).join(""))
    from = cut
  }
  return pieces
}

/** Every `size` code points. */
const every = (text: string, size: number): ReadonlyArray<string> =>
  cutAt(text, Array.from({ length: Math.ceil(Array.from(text).length / size) }, (_, i) => i * size))

const deltas = (pieces: ReadonlyArray<string>) => pieces.map((text) => StreamEvent.TextDelta({ text }))

/** The chunks of `pieces`, each delta in a chunk of its own (a paced stream). */
const runPaced = (pieces: ReadonlyArray<string>, options?: LlmStream.SentenceOptions) =>
  Effect.map(
    Stream.runCollect(LlmStream.sentences(Stream.fromChunks(...deltas(pieces).map((d) => Chunk.of(d))), options)),
    Chunk.toReadonlyArray
  )

/** The chunks of `pieces`, all deltas in one chunk (one network read of a fast stream). */
const runBatched = (pieces: ReadonlyArray<string>, options?: LlmStream.SentenceOptions) =>
  Effect.map(
    Stream.runCollect(LlmStream.sentences(Stream.fromChunk(Chunk.unsafeFromArray(deltas(pieces))), options)),
    Chunk.toReadonlyArray
  )

/** The chunks of `text`, checked to be the same whole, in deltas of 7 and of 1 code point, batched or not. */
const chunksOf = (text: string, options?: LlmStream.SentenceOptions) =>
  Effect.gen(function*() {
    const whole = yield* runPaced([text], options)
    for (const pieces of [every(text, 7), every(text, 1), every(text, 2)]) {
      expect(yield* runPaced(pieces, options)).toEqual(whole)
      expect(yield* runBatched(pieces, options)).toEqual(whole)
    }
    return whole
  })

/** The first chunk of a stream that never ends after `pieces`. */
const firstOf = (pieces: ReadonlyArray<string>, options?: LlmStream.SentenceOptions) =>
  Effect.map(
    Stream.runHead(LlmStream.sentences(Stream.concat(Stream.fromIterable(deltas(pieces)), Stream.never), options)),
    Option.getOrUndefined
  )

describe("LlmStream.sentences: boundaries", () => {
  it.effect("English sentence ends", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("Hello there. How are you? I'm fine! Bye")).toEqual([
        "Hello there.",
        "How are you?",
        "I'm fine!",
        "Bye"
      ])
    }))

  it.effect("Japanese, with no spaces between sentences", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("今日は晴れです。明日は雨でしょう！本当？はい。", { locale: "ja" })).toEqual([
        "今日は晴れです。",
        "明日は雨でしょう！",
        "本当？",
        "はい。"
      ])
      // a quotation closed after its own full stop goes on with its sentence
      expect(yield* chunksOf("彼は「はい。」と言った。次です。", { locale: "ja" })).toEqual([
        "彼は「はい。」と言った。",
        "次です。"
      ])
    }))

  it.effect("Chinese", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("今天天气很好。明天会下雨吗？会的！温度是3.5度。", { locale: "zh" })).toEqual([
        "今天天气很好。",
        "明天会下雨吗？",
        "会的！",
        "温度是3.5度。"
      ])
    }))

  it.effect("German: decimal commas, ordinals, abbreviations", () =>
    Effect.gen(function*() {
      expect(
        yield* chunksOf("Das kostet 3,50 Euro. Am 3. Mai kommt er, z. B. um 10 Uhr, bzw. später. Gut.", {
          locale: "de"
        })
      ).toEqual([
        "Das kostet 3,50 Euro.",
        "Am 3. Mai kommt er, z. B. um 10 Uhr, bzw. später.",
        "Gut."
      ])
    }))

  it.effect("French: abbreviations and the space before ! and ?", () =>
    Effect.gen(function*() {
      expect(
        yield* chunksOf("M. Dupont arrive à midi. Il vient, c.-à-d. demain, env. à 15 heures. Bien ! Et vous ?", {
          locale: "fr"
        })
      ).toEqual([
        "M. Dupont arrive à midi.",
        "Il vient, c.-à-d. demain, env. à 15 heures.",
        "Bien !",
        "Et vous ?"
      ])
    }))

  it.effect("emits a sentence once the next one has started, before the stream ends", () =>
    Effect.gen(function*() {
      expect(yield* firstOf(["One. Two"])).toBe("One.")
      expect(yield* firstOf(["今日は晴れです。", "明"], { locale: "ja" })).toBe("今日は晴れです。")
    }))

  it.effect("a tool call ends its step's text: what is pending is said before the tool runs", () =>
    Effect.gen(function*() {
      const toolStart = StreamEvent.ToolCallStart({ index: 0, id: "c1", name: "lookup" })
      for (const pieces of [["Let me check that. "], every("Let me check that. One moment", 3)]) {
        // the stream stays open after the call starts (the tool runs): the text must not wait for it
        const events = [...deltas(pieces), toolStart]
        const head = yield* Stream.runHead(
          LlmStream.sentences(Stream.concat(Stream.fromIterable(events), Stream.never), { minLength: 40 })
        )
        expect(Option.getOrUndefined(head)).toBe(pieces.join("").trim())
      }
      // the next step's text starts afresh, and the rest comes at the end
      const steps = [
        ...deltas(["Checking. "]),
        toolStart,
        ...deltas(["It is sunny. ", "Enjoy"])
      ]
      const all = yield* Stream.runCollect(LlmStream.sentences(Stream.fromIterable(steps)))
      expect(Chunk.toReadonlyArray(all)).toEqual(["Checking.", "It is sunny.", "Enjoy"])
      // a call with no text before it sends nothing
      const bare = yield* Stream.runCollect(LlmStream.sentences(Stream.fromIterable([toolStart, ...deltas(["Done."])])))
      expect(Chunk.toReadonlyArray(bare)).toEqual(["Done."])
    }))
})

describe("LlmStream.sentences: where a sentence never ends", () => {
  it.effect("decimals and abbreviations", () =>
    Effect.gen(function*() {
      expect(
        yield* chunksOf(
          "It costs 3.14 dollars. Meet Dr. Smith at 5 p.m. Bring the notes, e.g. the red ones, i.e. all. Mr. Brown agrees. Thanks."
        )
      ).toEqual([
        "It costs 3.14 dollars.",
        "Meet Dr. Smith at 5 p.m. Bring the notes, e.g. the red ones, i.e. all.",
        "Mr. Brown agrees.",
        "Thanks."
      ])
    }))

  it.effect("URLs and e-mail addresses", () =>
    Effect.gen(function*() {
      expect(
        yield* chunksOf(
          "See https://example.com/a.b?x=1&y=2!Z for details. Write to bob.smith@example.co.uk. Then go to www.example.org/Docs.Html now."
        )
      ).toEqual([
        "See https://example.com/a.b?x=1&y=2!Z for details.",
        "Write to bob.smith@example.co.uk.",
        "Then go to www.example.org/Docs.Html now."
      ])
    }))

  it.effect("numbered lists, on their own lines and inline", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("Steps:\n1. Open the lid.\n2. Pour the water.\n10. Done.")).toEqual([
        "Steps:",
        "1. Open the lid.",
        "2. Pour the water.",
        "10. Done."
      ])
      expect(yield* chunksOf("Do this: 1. Open it. 2. Close it.")).toEqual(["Do this: 1. Open it.", "2. Close it."])
      // a line end ends a sentence even after an abbreviation
      expect(yield* chunksOf("Wind from the N.W.\n2. Rain, e.g.\nHail.")).toEqual([
        "Wind from the N.W.",
        "2. Rain, e.g.",
        "Hail."
      ])
    }))

  it.effect("inline code and fenced code blocks", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("Run `a.b()` now. Then `x? Y` works. Ok.")).toEqual([
        "Run `a.b()` now.",
        "Then `x? Y` works.",
        "Ok."
      ])
      expect(yield* chunksOf("Here:\n```js\nconst a = 1. B\nfoo()! Bar\n```\nDone. Yes.")).toEqual([
        "Here:",
        "```js\nconst a = 1. B\nfoo()! Bar\n```",
        "Done.",
        "Yes."
      ])
    }))

  it.effect("a sentence in emphasis ends after its closing marker", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("**Note.** Then more. *Really?* Yes.")).toEqual([
        "**Note.**",
        "Then more.",
        "*Really?*",
        "Yes."
      ])
    }))
})

describe("LlmStream.sentences: lengths", () => {
  it.effect("minLength merges short sentences with the next; the last one goes alone when the stream ends", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("Yes. Sure. That is a longer sentence. Ok.", { minLength: 12 })).toEqual([
        "Yes. Sure. That is a longer sentence.",
        "Ok."
      ])
    }))

  it.effect("maxLength splits an overlong sentence at its last clause boundary that fits", () =>
    Effect.gen(function*() {
      expect(
        yield* chunksOf(
          "This sentence is rather long, and it keeps going; it has clauses: many of them — really. Short.",
          { maxLength: 40 }
        )
      ).toEqual([
        "This sentence is rather long,",
        "and it keeps going; it has clauses:",
        "many of them — really.",
        "Short."
      ])
    }))

  it.effect("maxLength falls back to the last space, and never splits code", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("one two three four five six seven eight nine ten", { maxLength: 20 })).toEqual([
        "one two three four",
        "five six seven eight",
        "nine ten"
      ])
      expect(yield* chunksOf("Call `a b c d e f g h i j k` now please", { maxLength: 12 })).toEqual([
        "Call",
        "`a b c d e f g h i j k`",
        "now please"
      ])
    }))

  it.effect("merging never makes a chunk longer than maxLength", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("Yes. This one is long enough alone. Ok.", { minLength: 10, maxLength: 32 })).toEqual([
        "Yes.",
        "This one is long enough alone.",
        "Ok."
      ])
    }))

  it.effect("firstChunk cuts the first chunk at a clause once it is long enough; later chunks are sentences", () =>
    Effect.gen(function*() {
      const text = "Well, since you asked, the answer is long, and detailed. Second one, with a comma, here."
      expect(yield* chunksOf(text, { firstChunk: { minLength: 15 } })).toEqual([
        "Well, since you asked,",
        "the answer is long, and detailed.",
        "Second one, with a comma, here."
      ])
      // before the sentence ends
      expect(yield* firstOf(["Well, since you asked, the an"], { firstChunk: { minLength: 15 } })).toBe(
        "Well, since you asked,"
      )
      // a first sentence long enough is emitted whole; a short one waits for the next
      expect(yield* chunksOf("Hi. Well, since you asked, yes.", { firstChunk: { minLength: 12 }, minLength: 40 }))
        .toEqual(["Hi. Well, since you asked,", "yes."])
      expect(yield* chunksOf("Japanese、too。", { locale: "ja", firstChunk: { minLength: 5 } })).toEqual([
        "Japanese、",
        "too。"
      ])
    }))
})

describe("LlmStream.sentences: speakable", () => {
  it.effect("strips emphasis, headings, link URLs, bullets, quotes and code fences; drops code blocks", () =>
    Effect.gen(function*() {
      const text = [
        "# The *plan*",
        "This is **bold** and _it_ is __fine__, ~~not~~ my_var_name or 2 * 3.",
        "- [The docs](https://x.y/a.b?c=1 \"title\") are *here*.",
        "* Use `npm i` and ![a logo](logo.png).",
        "> Quoted, with \\*stars\\*.",
        "```sh",
        "npm test. Really",
        "```",
        "---",
        "Done."
      ].join("\n")
      expect(yield* chunksOf(text, { speakable: true })).toEqual([
        "The plan",
        "This is bold and it is fine, not my_var_name or 2 * 3.",
        "The docs are here.",
        "Use npm i and a logo.",
        "Quoted, with *stars*.",
        "Done."
      ])
    }))

  it.effect("inline code keeps its words and is never split", () =>
    Effect.gen(function*() {
      expect(yield* chunksOf("Type `ls -la. Now` please. Then stop.", { speakable: true })).toEqual([
        "Type ls -la. Now please.",
        "Then stop."
      ])
    }))

  it.effect("lengths count the spoken text, not the markdown", () =>
    Effect.gen(function*() {
      expect(
        yield* chunksOf("See [this](https://example.com/a/very/long/path/that/is/not/spoken). Next.", {
          speakable: true,
          maxLength: 20
        })
      ).toEqual(["See this.", "Next."])
    }))
})

describe("LlmStream.sentences: options", () => {
  it.effect("works in a pipe, with and without options", () =>
    Effect.gen(function*() {
      const source = Stream.fromIterable(deltas(["Yes. Sure. Long enough now. Ok"]))
      const plain = yield* source.pipe(LlmStream.sentences, Stream.runCollect)
      expect(Chunk.toReadonlyArray(plain)).toEqual(["Yes.", "Sure.", "Long enough now.", "Ok"])
      const merged = yield* source.pipe((s) => LlmStream.sentences(s, { minLength: 8 }), Stream.runCollect)
      expect(Chunk.toReadonlyArray(merged)).toEqual(["Yes. Sure.", "Long enough now.", "Ok"])
    }))

  it.effect("refuses bad options with LlmInvalidRequestError", () =>
    Effect.gen(function*() {
      const bad: ReadonlyArray<readonly [LlmStream.SentenceOptions, RegExp]> = [
        [{ minLength: -1 }, /minLength/],
        [{ minLength: 1.5 }, /minLength/],
        [{ maxLength: 0 }, /maxLength/],
        [{ minLength: 50, maxLength: 20 }, /maxLength/],
        [{ firstChunk: { minLength: -3 } }, /firstChunk/],
        [{ firstChunk: { minLength: 30 }, maxLength: 20 }, /firstChunk/],
        [{ locale: "en_US" }, /locale/]
      ]
      for (const [options, message] of bad) {
        const error = yield* Effect.flip(runPaced(["Hello. World."], options))
        expect(error._tag).toBe("LlmInvalidRequestError")
        expect(error.message).toMatch(message)
      }
    }))
})

describe("LlmStream.sentences: any cutting of the text gives the same chunks", () => {
  /** A text, the options to chunk it with, and what its chunks join to (whitespace aside). */
  const samples: ReadonlyArray<readonly [string, LlmStream.SentenceOptions, string?]> = [
    [
      "Hello there. It costs 3.14 dollars, says Dr. Smith. Meet at 5 p.m. Tomorrow? Yes! See https://a.b/c?d=1. Write to x.y@z.org. Steps:\n1. First.\n2. Second.\nRun `a.b()`. Done.",
      {}
    ],
    ["Yes. Sure. Okay then, let us go; it is late: very late — truly. No. Fine.", { minLength: 10, maxLength: 30 }],
    ["Well, since you asked, the answer is long, and detailed. Second one, with a comma, here. Ok.", {
      firstChunk: { minLength: 12 },
      minLength: 20,
      maxLength: 45
    }],
    ["今日は晴れです。明日は雨でしょう！本当？はい。彼は「はい。」と言った。温度は3.5度、湿度は高い。", {
      locale: "ja",
      firstChunk: { minLength: 4 },
      minLength: 6
    }],
    ["今天天气很好。明天会下雨吗？会的！我们去公园，好吗？", { locale: "zh", maxLength: 8 }],
    ["Das kostet 3,50 Euro. Am 3. Mai kommt er, z. B. um 10 Uhr. Gut. Danke!", { locale: "de", minLength: 15 }],
    ["M. Dupont arrive à midi. Il vient, c.-à-d. demain. Bien ! Et vous ?", { locale: "fr", maxLength: 25 }],
    [
      "# Title\nThis is **bold** and _it_. Really? *Yes.* See [the docs](https://x.y/a.b?c). Use `npm i`.\n- One.\n- Two, three.\n```sh\nnpm test. X\n```\nDone.",
      { speakable: true, minLength: 8, maxLength: 40 },
      "Title This is bold and it. Really? Yes. See the docs. Use npm i. One. Two, three. Done."
    ],
    ["Hello. 123 apples. Hello. 4 5 6. Wait... what? OK.\n\n\nEnd", { maxLength: 12 }]
  ]

  for (const [text, options, spoken] of samples) {
    it.effect(`${text.slice(0, 32).replace(/\n/g, " ")}… ${JSON.stringify(options)}`, () =>
      Effect.gen(function*() {
        const whole = yield* runPaced([text], options)
        const squeeze = (s: string) => s.replace(/\s+/g, "")
        expect(squeeze(whole.join(""))).toBe(squeeze(spoken ?? text))
        expect(whole.every((chunk) => chunk.length > 0 && chunk === chunk.trim())).toBe(true)
        const length = Array.from(text).length
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(fc.integer({ min: 1, max: length - 1 }), { maxLength: 40 }),
              fc.boolean(),
              (cuts, batched) =>
                Effect.runPromise((batched ? runBatched : runPaced)(cutAt(text, cuts), options)).then((chunks) => {
                  expect(chunks).toEqual(whole)
                })
            ),
            { numRuns: 150, seed: 14 }
          )
        )
        for (const pieces of [every(text, 1), every(text, 3)]) expect(yield* runPaced(pieces, options)).toEqual(whole)
      }))
  }
})

describe("LlmStream.sentences: random texts, random options, random cuts", () => {
  /** Tokens that make boundaries hard: terminators, abbreviations, numbers, URLs, code, markdown, CJK. */
  const token = fc.constantFrom(
    "Hello",
    " world",
    " there",
    ".",
    ". ",
    "! ",
    "? ",
    "?! ",
    " Next",
    " again",
    " Dr. Smith",
    " e.g. this",
    " at 5 p.m. Then",
    " 3.14",
    " 1,000",
    ", ",
    "; ",
    ": ",
    " — ",
    " https://a.b/c?d=1!E",
    " x.y@z.org",
    "\n",
    "\n\n",
    "\n1. ",
    "\n- ",
    "\n# ",
    "\n> ",
    "\n```js\nco.de()! X\n```\n",
    " `a. B`",
    " **bold**",
    " _it_",
    " *em.* ",
    " [link. Text](http://u.v/w)",
    " ![img](i.png)",
    "\\*",
    "今日は",
    "晴れ",
    "。",
    "！",
    "、",
    "「はい。」と",
    " 🚀",
    "  ",
    " 123 "
  )
  const options = fc.record({
    minLength: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
    maxLength: fc.option(fc.integer({ min: 30, max: 80 }), { nil: undefined }),
    firstChunk: fc.option(fc.record({ minLength: fc.integer({ min: 0, max: 20 }) }), { nil: undefined }),
    speakable: fc.boolean(),
    locale: fc.constantFrom("en", "ja", "de", undefined)
  })

  it.effect(
    "the chunks are the same under every cutting, and hold the whole text",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(token, { minLength: 1, maxLength: 40 }),
            options,
            fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 30 }),
            fc.boolean(),
            async (tokens, options, cuts, batched) => {
              const text = tokens.join("")
              const whole = await Effect.runPromise(runPaced([text], options))
              const cut = await Effect.runPromise((batched ? runBatched : runPaced)(cutAt(text, cuts), options))
              expect(cut).toEqual(whole)
              expect(whole.every((chunk) => chunk.length > 0 && chunk === chunk.trim())).toBe(true)
              if (options.speakable !== true) expect(whole.join("").replace(/\s+/g, "")).toBe(text.replace(/\s+/g, ""))
            }
          ),
          { numRuns: 400, seed: 1414 }
        )
      ),
    120_000
  )
})

describe("the spoken text", () => {
  const decode = (speakable: boolean, pieces: ReadonlyArray<string>) => {
    const spoken = new SpokenText(speakable)
    const out = pieces.map((piece) => spoken.feed(piece)).join("") + spoken.end()
    return { out, ranges: spoken.ranges.map((range) => out.slice(range.start, range.end)) }
  }
  const markdown = "# T\nA **b** `c. D` [e](f) ![g](h)\n```\nx. Y\n```\n- i \\* _j_"

  it("kept, is the input itself, with its code marked", () => {
    expect(decode(false, [markdown])).toEqual({
      out: markdown,
      ranges: ["`c. D`", "```\nx. Y\n```"]
    })
  })

  it("speakable, drops the markup and the code block, and marks inline code", () => {
    expect(decode(true, [markdown])).toEqual({ out: "T\nA b c. D e g\ni * j", ranges: ["c. D"] })
  })

  it("is the same however the markdown was cut", () =>
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: markdown.length - 1 }), { maxLength: 12 }),
        fc.boolean(),
        (cuts, speakable) => {
          expect(decode(speakable, cutAt(markdown, cuts))).toEqual(decode(speakable, [markdown]))
        }
      ),
      { numRuns: 300, seed: 7 }
    ))
})

describe("LlmStream.sentences over loopback", () => {
  for (const protocol of ["chat", "messages"] as const) {
    it.live(`${protocol}: a streamed reply in small deltas becomes speakable chunks`, () =>
      withServer(protocol, (server) =>
        Effect.gen(function*() {
          server.enqueue({
            kind: "reply",
            text: "**Sure.** The timer is set for 3.5 minutes, e.g. until 5 p.m. today. Anything else?",
            chunkSize: 3
          })
          const chunks = yield* Stream.runCollect(
            LlmStream.sentences(Llm.stream([Message.user("Set a timer")]), {
              speakable: true,
              minLength: 10,
              locale: "en"
            })
          )
          expect(Chunk.toReadonlyArray(chunks)).toEqual([
            "Sure. The timer is set for 3.5 minutes, e.g. until 5 p.m. today.",
            "Anything else?"
          ])
        })))
  }
})
