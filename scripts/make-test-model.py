#!/usr/bin/env python3
"""Writes a random-weight GGUF model that llama.cpp's llama-server loads: the test engine's model.

Random weights decode at the speed of real ones of the same shape (the work per token is the same), and give
random answers, which is what the accuracy tests check against chance. Shapes:

  tiny        llama architecture, 8 layers of 512, vocabulary 4,096 (about 30 M parameters): CI on a CPU, where
              token times (milliseconds) and not HTTP dominate
  qwen-1.5b   the shape of DeepSeek-R1-Distill-Qwen-1.5B (qwen2: 28 layers of 1,536, 151,936 tokens)
  llama-8b    the shape of DeepSeek-R1-Distill-Llama-8B (llama: 32 layers of 4,096, 128,256 tokens)

The vocabulary is SentencePiece-style: byte tokens, the printable characters with and without the word mark, and
the pieces needed to spell the answer letters, `<think>` and `</think>`, then two-letter pieces to fill it. Prompts
given as token ids are exact; text prompts tokenize to roughly one token per character.

The matrices are stored as --type: f16 (the default), q8_0 or q4_0 (quantized by the gguf package, as llama.cpp's
own quantizer lays the blocks out); the same seed gives the same weights before quantization, so the three files
are quantizations of one model.

--vocab bpe writes a byte-level BPE vocabulary instead (GPT-2's layout: the 256 byte symbols, merges of printable
pairs, `<|endoftext|>` for both ends), and --no-chat-template leaves the template out, so that the engine falls back
to its own.

Usage: make-test-model.py OUTPUT.gguf [--shape tiny] [--seed 0] [--context 4096] [--type f16] [--vocab spm|bpe]
                          [--no-chat-template]
"""
import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - told to the user
    sys.exit("make-test-model.py needs the gguf package: python3 -m pip install gguf")

SHAPES = {
    "tiny": dict(arch="llama", n_embd=512, n_layer=8, n_ff=1408, n_head=8, n_head_kv=4, n_vocab=4096, bias=False),
    "qwen-1.5b": dict(arch="qwen2", n_embd=1536, n_layer=28, n_ff=8960, n_head=12, n_head_kv=2, n_vocab=151936, bias=True),
    "llama-8b": dict(arch="llama", n_embd=4096, n_layer=32, n_ff=14336, n_head=32, n_head_kv=8, n_vocab=128256, bias=False),
}

# A template with a thinking section, as the reasoning models have (Qwen3's layout): an assistant turn shows its
# reasoning between <think> and </think>, and a new turn opens the thinking. llama-server reads the tags from the
# template, so its reasoning budget closes the section with `</think>` in chat requests too.
# --type: the file type llama.cpp reads (general.file_type) and the matrices' tensor type (None: F16 as written).
TYPES = {
    "f16": (gguf.LlamaFileType.MOSTLY_F16, None),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
    "q4_0": (gguf.LlamaFileType.MOSTLY_Q4_0, gguf.GGMLQuantizationType.Q4_0),
}

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>"
    "{% if message['reasoning_content'] is defined and message['reasoning_content'] %}"
    "<think>\n{{ message['reasoning_content'] }}\n</think>\n\n{% endif %}"
    "{{ message['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}"
    "{% endif %}"
)


def bytes_to_unicode():
    """GPT-2's map from bytes to printable characters, which byte-level BPE vocabularies spell their tokens in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


def bpe_vocabulary(size):
    """Byte-level BPE: the 256 byte symbols, the special pieces, then merges of printable pairs (lower-case letters
    first, with and without the word mark `Ġ`) up to `size` tokens; the merges in the order they were made."""
    symbols = bytes_to_unicode()
    tokens = [symbols[byte] for byte in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    for special in ["<|endoftext|>", "<|user|>", "<|assistant|>", "<think>", "</think>"]:
        tokens.append(special)
        types.append(gguf.TokenType.CONTROL if special == "<|endoftext|>" else gguf.TokenType.USER_DEFINED)
    merges = []
    known = set(tokens)
    space = symbols[ord(" ")]
    letters = "abcdefghijklmnopqrstuvwxyz"
    candidates = [(space, char) for char in letters + letters.upper() + "0123456789"]
    candidates += [(first, second) for first in letters for second in letters]
    candidates += [(space + first, second) for first in letters for second in letters]
    printable = [chr(code) for code in range(33, 127)]
    candidates += [(first, second) for first in printable for second in printable]
    for left, right in candidates:
        if len(tokens) >= size:
            break
        if left in known and right in known and left + right not in known:
            merges.append(f"{left} {right}")
            tokens.append(left + right)
            types.append(gguf.TokenType.NORMAL)
            known.add(left + right)
    return tokens, types, merges


def vocabulary(size):
    tokens, scores, types = [], [], []

    def add(piece, kind=gguf.TokenType.NORMAL, score=0.0):
        tokens.append(piece.encode("utf-8"))
        scores.append(score)
        types.append(kind)

    add("<unk>", gguf.TokenType.UNKNOWN)
    add("<s>", gguf.TokenType.CONTROL)
    add("</s>", gguf.TokenType.CONTROL)
    for byte in range(256):
        add(f"<0x{byte:02X}>", gguf.TokenType.BYTE)
    for special in ["<|user|>", "<|assistant|>", "<think>", "</think>"]:
        add(special, gguf.TokenType.USER_DEFINED)
    printable = [chr(code) for code in range(33, 127)]
    add("\u2581", score=-1.0)
    for char in printable:
        add(char, score=-2.0)
        add("\u2581" + char, score=-1.5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for first in letters:
        for second in letters:
            if len(tokens) >= size:
                break
            add("\u2581" + first + second, score=-1.0)
            if len(tokens) < size:
                add(first + second, score=-1.2)
    index = 0
    while len(tokens) < size:
        add(f"\u2581x{index}", score=-9.0)
        index += 1
    return tokens[:size], scores[:size], types[:size]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--type", choices=sorted(TYPES), default="f16")
    parser.add_argument("--vocab", choices=["spm", "bpe"], default="spm")
    parser.add_argument("--no-chat-template", action="store_true")
    args = parser.parse_args()
    file_type, tensor_type = TYPES[args.type]
    shape = SHAPES[args.shape]
    arch = shape["arch"]
    n_embd, n_head, n_head_kv = shape["n_embd"], shape["n_head"], shape["n_head_kv"]
    head_dim = n_embd // n_head
    rng = np.random.default_rng(args.seed)
    cache = {}

    def weight(*dims, scale=0.02):
        # One random tensor per shape, reused: writing a model of billions of parameters stays fast.
        if dims not in cache:
            values = rng.standard_normal(dims, dtype=np.float32) * scale
            cache[dims] = values.astype(np.float16) if tensor_type is None else gguf.quants.quantize(values, tensor_type)
        return cache[dims]

    def add_matrix(name, *dims):
        if tensor_type is None:
            writer.add_tensor(name, weight(*dims))
        else:
            writer.add_tensor(name, weight(*dims), raw_dtype=tensor_type)

    writer = gguf.GGUFWriter(args.output, arch)
    writer.add_name(f"edgeplan-random-{args.shape}")
    writer.add_context_length(args.context)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(shape["n_layer"])
    writer.add_feed_forward_length(shape["n_ff"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(file_type)
    if args.vocab == "bpe":
        tokens, types, merges = bpe_vocabulary(shape["n_vocab"])
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(256)
        writer.add_eos_token_id(256)
        writer.add_add_bos_token(False)
    else:
        tokens, scores, types = vocabulary(shape["n_vocab"])
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_unk_token_id(0)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if not args.no_chat_template:
        writer.add_chat_template(CHAT_TEMPLATE)

    n_vocab, n_ff = shape["n_vocab"], shape["n_ff"]
    kv_dim = head_dim * n_head_kv
    add_matrix("token_embd.weight", n_vocab, n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    add_matrix("output.weight", n_vocab, n_embd)
    for layer in range(shape["n_layer"]):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add_matrix(prefix + "attn_q.weight", n_embd, n_embd)
        add_matrix(prefix + "attn_k.weight", kv_dim, n_embd)
        add_matrix(prefix + "attn_v.weight", kv_dim, n_embd)
        add_matrix(prefix + "attn_output.weight", n_embd, n_embd)
        if shape["bias"]:
            writer.add_tensor(prefix + "attn_q.bias", np.zeros(n_embd, dtype=np.float32))
            writer.add_tensor(prefix + "attn_k.bias", np.zeros(kv_dim, dtype=np.float32))
            writer.add_tensor(prefix + "attn_v.bias", np.zeros(kv_dim, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add_matrix(prefix + "ffn_gate.weight", n_ff, n_embd)
        add_matrix(prefix + "ffn_up.weight", n_ff, n_embd)
        add_matrix(prefix + "ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parameters = n_vocab * n_embd * 2 + shape["n_layer"] * (2 * n_embd * n_embd + 2 * kv_dim * n_embd + 3 * n_embd * n_ff)
    print(f"{args.output}: {args.shape} ({arch}), {parameters / 1e6:.1f} M parameters, {args.type}, {args.vocab} "
          f"vocabulary{', no chat template' if args.no_chat_template else ''}")


if __name__ == "__main__":
    main()
