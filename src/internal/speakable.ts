/**
 * Speakable chunks: the text of a reply regrouped, as it streams, into the
 * pieces a speech synthesiser is given. Sentence boundaries come from
 * `Intl.Segmenter`; this module decides which of them are real (not inside
 * code, a URL, an abbreviation or a list marker), merges short sentences,
 * splits long ones at a soft boundary and may cut the first chunk early.
 *
 * Streaming: `Intl.Segmenter` judges a boundary from what follows it, so a
 * boundary is acted on only once that can no longer change: a letter (or
 * another sentence end, or a line end) has arrived after it. Until then the
 * sentence waits; at the end of the stream every boundary is final. A cheap
 * scan of each delta finds the terminators after which a chunk could end
 * (followed by a space or a line end, or CJK, outside code); the segmenter
 * runs only when one of them has settled, and only over the tail after the
 * last boundary judged, up to what settled it. Each call of the segmenter
 * costs several microseconds, so it runs about once per sentence; the text
 * is kept in blocks so that reading it never copies all of it. The chunks
 * are the same however the text was cut into deltas: a cut is made only
 * where everything before it is settled.
 *
 * @internal
 */
import { type Protected, SpokenText } from "./spokenText.js"

/** How to chunk, once checked. */
export interface ChunkerOptions {
  readonly locale: string | undefined
  /** A chunk shorter than this waits for the next sentence (0: every sentence alone). */
  readonly minLength: number
  /** A sentence longer than this is split at a soft boundary (`Infinity`: never). */
  readonly maxLength: number
  /** The first chunk may end at a clause boundary once it is this long (`undefined`: only at sentence ends). */
  readonly firstMinLength: number | undefined
  readonly speakable: boolean
}

/** A character after which `Intl.Segmenter` may put a boundary: a sentence terminator or a line separator. */
const terminator = /[\p{Sentence_Terminal}\n\r\u0085\u2028\u2029]/u

/** Whether a character code is a letter (a lone surrogate is not). */
const isLetter = (c: number): boolean =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c > 127 && /\p{L}/u.test(String.fromCharCode(c)))

/** Whether `text` holds a terminator at or after `from`. */
const hasTerminator = (text: string, from: number): boolean => {
  for (let i = from; i < text.length; i++) if (isTerminator(text.charCodeAt(i))) return true
  return false
}

/** Whether a character code is a line separator. */
const isSeparator = (c: number): boolean => c === 10 || c === 13 || c === 0x85 || c === 0x2028 || c === 0x2029

/** Whether a character code is a sentence terminator or a line separator. */
const isTerminator = (c: number): boolean =>
  c === 46 || c === 33 || c === 63 || c === 10 || c === 13 || (c > 127 && terminator.test(String.fromCharCode(c)))

/** Abbreviations that end in a full stop but rarely end a sentence, by language; English ones apply to all. */
const abbreviationsByLanguage: Record<string, ReadonlyArray<string>> = {
  en: [
    "mr",
    "mrs",
    "ms",
    "mx",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "etc",
    "approx",
    "inc",
    "ltd",
    "co",
    "corp",
    "dept",
    "est",
    "fig",
    "vol",
    "ch",
    "sec",
    "gen",
    "gov",
    "sgt",
    "capt",
    "lt",
    "col",
    "rev",
    "hon",
    "ave",
    "blvd",
    "rd",
    "mt",
    "jan",
    "feb",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "al",
    "cf",
    "ca",
    "viz",
    "ph.d"
  ],
  de: [
    "bzw",
    "usw",
    "nr",
    "str",
    "evtl",
    "ggf",
    "inkl",
    "vgl",
    "bsp",
    "sog",
    "hr",
    "fr",
    "dipl",
    "ing",
    "abs",
    "tel",
    "zzgl",
    "ggü",
    "allg",
    "bzgl",
    "gem"
  ],
  fr: ["mme", "mlle", "mm", "pr", "env", "c.-à-d", "p.ex", "éd", "chap", "av", "bd", "ste"],
  es: ["sra", "srta", "dra", "ud", "uds", "pág", "núm", "aprox", "ej", "av"],
  it: ["sig", "sigg", "dott", "ecc", "pag", "avv", "ing"],
  pt: ["sra", "dra", "pág", "aprox", "av"],
  nl: ["bijv", "dhr", "mevr", "enz"]
}

/** Languages that write ordinal numbers with a full stop ("am 3. Mai"). */
const ordinalLanguages = new Set([
  "de",
  "da",
  "nb",
  "nn",
  "no",
  "fi",
  "is",
  "et",
  "lv",
  "cs",
  "sk",
  "sl",
  "hr",
  "sr",
  "bs",
  "hu",
  "pl",
  "tr",
  "fo"
])

/** Letters with full stops between them: e.g, i.e, p.m, U.S, z.B, and single initials. */
const initials = /^(?:\p{L}\.)*\p{L}$/u

const digits = /^\d{1,3}$/

/** One segmenter per locale: they hold no state between calls. */
const segmenters = new Map<string, Intl.Segmenter>()

/**
 * The sentence segmenter for `locale` (the runtime's default when undefined);
 * throws `RangeError` for a malformed locale.
 *
 * @internal
 */
export const segmenterFor = (locale: string | undefined): Intl.Segmenter => {
  const key = locale ?? ""
  let segmenter = segmenters.get(key)
  if (segmenter === undefined) {
    segmenter = new Intl.Segmenter(locale, { granularity: "sentence" })
    if (segmenters.size < 64) segmenters.set(key, segmenter)
  }
  return segmenter
}

const isSpace = (c: number): boolean =>
  c === 32 || c === 10 || c === 9 || c === 13 || (c > 127 && /\s/.test(String.fromCharCode(c)))

/** Characters of scripts written without spaces, and their punctuation (CJK and beyond): a boundary needs no space after them. */
const isWide = (c: number): boolean => c >= 0x2e80 && (c < 0xd800 || c > 0xdfff)

/** Closing CJK quotes and brackets. */
const isCjkClosing = (c: number): boolean =>
  c === 0x300d || c === 0x300f || c === 0x3011 || c === 0x3009 || c === 0x300b || c === 0x3015 || c === 0xff09 ||
  c === 0xff3d

const isHiragana = (c: number): boolean => c >= 0x3040 && c <= 0x309f

/** What may close a sentence after its terminator: emphasis and code marks, brackets, quotes. */
const isCloser = (c: number): boolean =>
  c === 42 || c === 95 || c === 126 || c === 96 || c === 41 || c === 93 || c === 34 || c === 39 || c === 0x201d ||
  c === 0x2019 || c === 0xbb

const isLowercase = (c: number): boolean => (c >= 97 && c <= 122) || (c > 127 && /\p{Ll}/u.test(String.fromCharCode(c)))

/** Clause punctuation after which a chunk may end: `,` `;` `:` need a space after them, dashes and CJK marks do not. */
const clauseEndAt = (text: Chars, i: number): boolean => {
  const c = text.charCodeAt(i)
  switch (c) {
    case 44: // ,
    case 59: // ;
    case 58: // :
      return isSpace(text.charCodeAt(i + 1))
    case 0x2014: // —
      return true
    case 0x2013: // – between spaces
      return isSpace(text.charCodeAt(i - 1)) && isSpace(text.charCodeAt(i + 1))
    case 0x3001: // 、
    case 0xff0c: // ，
    case 0xff1b: // ；
    case 0xff1a: // ：
      return true
    default:
      return false
  }
}

/** Characters read by position: a string or a `TextBuffer`. */
interface Chars {
  readonly length: number
  charCodeAt(index: number): number
}

/** The size of a `TextBuffer` block (a power of two). */
const blockBits = 8
const blockSize = 1 << blockBits

/**
 * The text not yet cut into pieces, in blocks of `blockSize` characters.
 * A string grown by `+=` is a rope that V8 flattens, copying all of it, the
 * next time it is read; a long sentence or code block read on every delta
 * would cost time quadratic in its length. Here a read flattens one block.
 */
class TextBuffer implements Chars {
  private blocks: Array<string> = []
  /** Where position 0 lies in `blocks[0]`. */
  private first = 0
  length = 0

  append(text: string): void {
    let i = 0
    const last = this.blocks.length - 1
    if (last >= 0) {
      const room = blockSize - this.blocks[last]!.length
      if (room > 0) {
        const part = text.length <= room ? text : text.slice(0, room)
        this.blocks[last] += part
        i = part.length
      }
    }
    for (; i < text.length; i += blockSize) this.blocks.push(text.slice(i, i + blockSize))
    this.length += text.length
  }

  charCodeAt(index: number): number {
    if (index < 0 || index >= this.length) return NaN
    const j = index + this.first
    return this.blocks[j >> blockBits]!.charCodeAt(j & (blockSize - 1))
  }

  slice(from: number, to: number = this.length): string {
    if (to <= from) return ""
    const a = from + this.first
    const b = to + this.first
    const first = a >> blockBits
    const last = (b - 1) >> blockBits
    if (first === last) return this.blocks[first]!.slice(a & (blockSize - 1), ((b - 1) & (blockSize - 1)) + 1)
    let out = this.blocks[first]!.slice(a & (blockSize - 1))
    for (let k = first + 1; k < last; k++) out += this.blocks[k]!
    return out + this.blocks[last]!.slice(0, ((b - 1) & (blockSize - 1)) + 1)
  }

  /** Removes the first `count` characters. */
  drop(count: number): void {
    this.length -= count
    if (this.length === 0) {
      this.blocks = []
      this.first = 0
      return
    }
    const j = this.first + count
    if (j >> blockBits > 0) this.blocks.splice(0, j >> blockBits)
    this.first = j & (blockSize - 1)
  }
}

/** The outcome of judging a boundary: cut at this position, not a boundary, or not known yet. */
const reject = -1
const wait = -2

/**
 * Regroups a stream of text into speakable chunks: `feed` each delta and
 * take the chunks it completes; `end` returns the rest.
 *
 * @internal
 */
export class SentenceChunker {
  private readonly spoken: SpokenText
  private readonly abbreviations: ReadonlySet<string>
  private readonly ordinals: boolean
  /** The spoken text not yet cut into pieces; `base` is the position of its first character. */
  private readonly buffer = new TextBuffer()
  private base = 0
  /** Where segmenting resumes: the last boundary judged (or cut). */
  private segFrom = 0
  /** Where `scan` resumes: the first terminator not settled yet (or the end). */
  private scanFrom = 0
  /** Just after the first terminator not settled yet: soft cuts are made only before it. */
  private hold = Infinity
  /** Pieces cut but not sent: shorter than the minimum so far. */
  private pending = ""
  private first = true
  /** Where the search for the first chunk's clause boundary resumes. */
  private clauseFrom = 0
  /** A too-long sentence with no soft boundary: searched from `softBase` up to `softFrom` in vain. */
  private softBase = -1
  private softFrom = 0
  /** The first protected range that may still matter. */
  private range = 0
  private out: Array<string> = []

  constructor(private readonly options: ChunkerOptions, private readonly segmenter: Intl.Segmenter) {
    this.spoken = new SpokenText(options.speakable)
    const language = (options.locale === undefined
      ? segmenter.resolvedOptions().locale
      : Intl.getCanonicalLocales(options.locale)[0] ?? "").split("-")[0]!.toLowerCase()
    this.abbreviations = new Set([...abbreviationsByLanguage.en!, ...(abbreviationsByLanguage[language] ?? [])])
    this.ordinals = ordinalLanguages.has(language)
  }

  /** The chunks `delta` completes. */
  feed(delta: string): Array<string> {
    const text = this.spoken.feed(delta)
    if (text.length > 0) {
      this.buffer.append(text)
      const settledEnd = this.scan()
      if (settledEnd >= 0) this.advance(settledEnd, false)
      else if (this.options.firstMinLength !== undefined || this.options.maxLength !== Infinity) {
        while (this.softCut(this.hold, this.hold, false)) {
          // cut again
        }
      }
    }
    return this.take()
  }

  /** The rest, at the end of the stream. */
  end(): Array<string> {
    const text = this.spoken.end()
    if (text.length > 0) this.buffer.append(text)
    this.hold = Infinity
    this.advance(this.base + this.buffer.length, true)
    this.cut(this.base + this.buffer.length)
    this.flush()
    return this.take()
  }

  private take(): Array<string> {
    if (this.out.length === 0) return this.out
    const out = this.out
    this.out = []
    return out
  }

  /**
   * Looks, without the segmenter, for the terminators after which a chunk could end: followed
   * (after closing quotes, brackets or emphasis marks) by a space or a line end, or written
   * without spaces (CJK), and not inside code. Such a boundary is settled once a letter or
   * another terminator has arrived after it. Returns the position just after the last settled
   * one's settling character (-1 if none); `hold` becomes the position just after the first
   * terminator still unsettled, before which alone a soft cut may be made.
   */
  private scan(): number {
    const buffer = this.buffer
    const base = this.base
    const n = buffer.length
    let settledEnd = -1
    for (let i = Math.max(this.scanFrom, this.segFrom) - base; i < n; i++) {
      const c = buffer.charCodeAt(i)
      if (!isTerminator(c)) continue
      let q = i + 1
      if (!isSeparator(c)) {
        while (q < n && (isTerminator(buffer.charCodeAt(q)) || isCloser(buffer.charCodeAt(q)))) {
          if (isSeparator(buffer.charCodeAt(q))) break
          q++
        }
        if (q === n) return this.unsettledAt(i, settledEnd)
        if (!isSpace(buffer.charCodeAt(q)) && !isWide(buffer.charCodeAt(q - 1))) {
          // no chunk ends here (inside a URL, an address, a number)
          i = q - 1
          continue
        }
      }
      if (this.isProtected(base + q)) {
        // inside code: no chunk ends here; after a line end, segmenting may resume as from a start
        if (isSeparator(c) && settledEnd < 0) this.segFrom = base + q
        i = q - 1
        continue
      }
      let r = q
      while (r < n && !isLetter(buffer.charCodeAt(r)) && !isTerminator(buffer.charCodeAt(r))) r++
      if (r === n) return this.unsettledAt(i, settledEnd)
      settledEnd = base + r + 1
      i = q - 1
    }
    this.scanFrom = base + n
    this.hold = Infinity
    return settledEnd
  }

  private unsettledAt(i: number, settledEnd: number): number {
    this.scanFrom = this.base + i
    this.hold = this.base + i + 1
    return settledEnd
  }

  /**
   * Segments the tail up to `settledEnd` (all of it at the end) and acts on every boundary in
   * it, and on the soft cuts before each.
   */
  private advance(settledEnd: number, final: boolean): void {
    const from = this.segFrom
    const text = this.buffer.slice(from - this.base, settledEnd - this.base)
    const segments = this.segmenter.segment(text)
    // `containing` costs less than iterating; no boundary follows the last terminator
    for (let at = 0; hasTerminator(text, at);) {
      const segment = segments.containing(at)
      if (segment === undefined) break
      at = segment.index + segment.segment.length
      if (at >= text.length) break
      const position = from + at
      while (this.softCut(position, position, final)) {
        // cut again
      }
      if (position <= this.base) continue
      const cut = this.judge(position, final)
      if (cut === wait) break
      if (cut === reject) this.segFrom = Math.max(this.segFrom, position)
      else this.cut(cut)
    }
    const end = this.base + this.buffer.length
    while (this.softCut(this.hold, final ? end : this.hold, final)) {
      // cut again
    }
  }

  /**
   * One soft cut before `horizon` (the next boundary, settled or not), if one is due: the first
   * chunk's clause boundary, or a too-long sentence's best soft boundary. `sentenceEnd` is where the
   * current sentence ends, if known.
   */
  private softCut(horizon: number, sentenceEnd: number, final: boolean): boolean {
    const end = this.base + this.buffer.length
    const { firstMinLength, maxLength } = this.options
    if (this.first && firstMinLength !== undefined) {
      const cut = this.clauseCut(Math.min(horizon, end), firstMinLength, maxLength)
      if (cut !== undefined) {
        this.cut(cut)
        return true
      }
    }
    if (maxLength !== Infinity) {
      const cut = this.lengthCut(final ? Math.min(sentenceEnd, end) : sentenceEnd, maxLength)
      if (cut !== undefined) {
        this.cut(cut)
        return true
      }
    }
    return false
  }

  /** The first clause boundary before `limit` at which the first chunk is long enough (and not too long). */
  private clauseCut(limit: number, minLength: number, maxLength: number): number | undefined {
    const buffer = this.buffer
    const base = this.base
    const lead = this.pending.trim().length === 0 ? leadingSpaces(buffer) : 0
    // a boundary needs the character after it
    for (let i = this.clauseFrom - base; i + 1 < limit - base && i < buffer.length - 1; i++) {
      this.clauseFrom = base + i
      if (!clauseEndAt(buffer, i) || this.isProtected(base + i + 1)) continue
      const length = this.pending.trim().length === 0
        ? i + 1 - lead
        : (this.pending + buffer.slice(0, i + 1)).trim().length
      if (length > maxLength) return undefined
      if (length >= minLength) return base + i + 1
    }
    return undefined
  }

  /**
   * Where to split the current sentence if it is longer than `maxLength`: the last clause
   * boundary in the second half of what fits, else the last space that fits, else the last
   * clause boundary that fits, else the first soft boundary after it; `undefined` if it fits
   * or none has arrived yet.
   */
  private lengthCut(sentenceEnd: number, maxLength: number): number | undefined {
    const buffer = this.buffer
    const base = this.base
    const start = leadingSpaces(buffer)
    const last = sentenceEnd === Infinity ? buffer.length : sentenceEnd - base
    let stop = last
    while (stop > start && isSpace(buffer.charCodeAt(stop - 1))) stop--
    // it fits (or, its end unknown, fits so far)
    if (stop - start <= maxLength) return undefined
    if (this.softBase !== base) {
      this.softBase = base
      let space = -1
      let lowClause = -1
      for (let i = Math.min(start + maxLength, buffer.length - 1); i > start; i--) {
        if (clauseEndAt(buffer, i - 1) && i - start <= maxLength && !this.isProtected(base + i)) {
          if (i - start >= maxLength / 2) return base + i
          if (lowClause < 0) lowClause = i
        }
        if (space < 0 && this.isSpaceCut(i)) space = i + 1
      }
      if (space > 0) return base + space
      if (lowClause > 0) return base + lowClause
      this.softFrom = base + start + maxLength
    }
    // nothing fits: the first soft boundary after the limit, before the sentence ends
    const limit = Math.min(last, buffer.length - 1)
    for (let i = Math.max(this.softFrom - base, start + 1); i < limit; i++) {
      this.softFrom = base + i
      if (clauseEndAt(buffer, i - 1) && !this.isProtected(base + i)) return base + i
      if (this.isSpaceCut(i)) return base + i + 1
    }
    return undefined
  }

  /** Whether a chunk may end at the space at `i` of the buffer: it follows a word, outside code, not after an abbreviation. */
  private isSpaceCut(i: number): boolean {
    const buffer = this.buffer
    if (!isSpace(buffer.charCodeAt(i)) || isSpace(buffer.charCodeAt(i - 1))) return false
    if (this.isProtected(this.base + i)) return false
    return buffer.charCodeAt(i - 1) !== 46 || !this.holdsAfterFullStop(i - 1)
  }

  /**
   * Whether the boundary at `at` (settled) is real, and where the chunk ends then: `reject` when
   * it is inside code, a URL, an e-mail address or a number, after an abbreviation or a list marker;
   * `wait` when that depends on what has not arrived.
   */
  private judge(at: number, final: boolean): number {
    const buffer = this.buffer
    const i = at - this.base
    let e = i
    let lineEnd = false
    while (e > 0 && isSpace(buffer.charCodeAt(e - 1))) if (buffer.charCodeAt(--e) === 10) lineEnd = true
    // a line end always ends the sentence (outside code); a full stop only if it ends no abbreviation
    if (!lineEnd && buffer.charCodeAt(e - 1) === 46 && this.holdsAfterFullStop(e - 1)) return reject
    const before = buffer.charCodeAt(i - 1)
    const after = buffer.charCodeAt(i)
    let cut = at
    if (!isSpace(before) && !isSpace(after) && !isWide(before)) {
      // no space at the boundary: inside a token (a URL, an address, a.b), unless the
      // sentence closed inside emphasis or quotes and a space follows their marks
      let q = i
      while (q < buffer.length && isCloser(buffer.charCodeAt(q))) q++
      if (q === buffer.length) return final ? reject : wait
      if (q === i || !isSpace(buffer.charCodeAt(q))) return reject
      while (q < buffer.length && isSpace(buffer.charCodeAt(q))) q++
      if (q === buffer.length) return final ? reject : wait
      if (isLowercase(buffer.charCodeAt(q))) return reject
      cut = this.base + q
    }
    if (this.isProtected(cut)) return reject
    // Japanese: a quotation closed after its full stop, its sentence going on
    if (isCjkClosing(before) && isHiragana(after)) return reject
    return cut
  }

  /** Whether the full stop at `i` of the buffer does not end a sentence: an abbreviation, an ordinal, a list marker. */
  private holdsAfterFullStop(i: number): boolean {
    const buffer = this.buffer
    let w = i
    while (w > 0 && !isSpace(buffer.charCodeAt(w - 1))) w--
    const word = buffer.slice(w, i).replace(/^[^\p{L}\p{N}]+/u, "").toLowerCase()
    if (word.length === 0) return false
    if (initials.test(word) || this.abbreviations.has(word)) return true
    if (!digits.test(word)) return false
    if (this.ordinals) return true
    // "1." starting its sentence or its line, or after a colon
    let p = w
    while (p > 0 && isSpace(buffer.charCodeAt(p - 1)) && buffer.charCodeAt(p - 1) !== 10) p--
    return p === 0 || buffer.charCodeAt(p - 1) === 10 || buffer.charCodeAt(p - 1) === 58
  }

  /** Whether `at` lies strictly inside code. */
  private isProtected(at: number): boolean {
    const ranges: ReadonlyArray<Protected> = this.spoken.ranges
    for (let r = this.range; r < ranges.length; r++) {
      const range = ranges[r]!
      if (range.start >= at) return false
      if (at < range.end) return true
    }
    return false
  }

  /** Cuts the buffer at `at`: the piece before it joins the pending chunk, which is sent once long enough. */
  private cut(at: number): void {
    const i = at - this.base
    if (i <= 0) return
    const piece = this.buffer.slice(0, i)
    this.buffer.drop(i)
    this.base = at
    if (this.segFrom < at) this.segFrom = at
    if (this.clauseFrom < at) this.clauseFrom = at
    const ranges = this.spoken.ranges
    while (this.range < ranges.length && ranges[this.range]!.end <= at) this.range++
    if (this.range > 64) {
      ranges.splice(0, this.range)
      this.range = 0
    }
    const { firstMinLength, maxLength, minLength } = this.options
    if (maxLength !== Infinity && this.pending.length > 0 && (this.pending + piece).trim().length > maxLength) {
      this.flush()
    }
    this.pending += piece
    const threshold = this.first && firstMinLength !== undefined ? firstMinLength : minLength
    if (this.pending.trim().length >= Math.max(threshold, 1)) this.flush()
  }

  /** Sends the pending chunk. */
  private flush(): void {
    const chunk = this.pending.trim()
    this.pending = ""
    if (chunk.length > 0) {
      this.out.push(chunk)
      this.first = false
    }
  }
}

/** How many white space characters `text` starts with. */
const leadingSpaces = (text: Chars): number => {
  let i = 0
  while (i < text.length && isSpace(text.charCodeAt(i))) i++
  return i
}
