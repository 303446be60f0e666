"""``ccrop bench``'s printed table and its two charts (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

DPI = 100
BACKEND_COLOURS = {"ffcv": "tab:blue", "dali-cpu": "tab:green", "dali-gpu": "tab:olive", "pytorch": "tab:red",
                   "bare": "tab:gray"}


def print_rows(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print ``(measure, figure, goal)`` rows under a title (the ``benchmarks/`` scripts' report)."""
    print(f"\n== {title}")
    width = max(len(r[0]) for r in rows)
    for measure, figure, goal in rows:
        print(f"  {measure:<{width}}  {figure:>14}   {goal}")


def table_text(record: dict) -> str:
    s, m = record["settings"], record["machine"]
    lines = [f"== ccrop bench: {s['images']} JPEGs per size, {s['threads']} threads, batch {s['batch_size']}, "
             f"{s['view_size'][0]}x{s['view_size'][1]} views, each image read {s['passes']}x per epoch, "
             f"best of {s['rounds']} alternating rounds",
             f"   {m['cpu']}, {m['cores']} cores, resampler {m['resampler_simd_name']}; {record['date']}"]
    width = max([len(r["label"]) for r in record["results"]] + [len(c["title"]) for c in record["comparisons"]]
                + [20])
    for size in s["sizes"]:
        lines.append(f"\n-- .beton max resolution {size}")
        for r in (r for r in record["results"] if r["size"] == size):
            lines.append(f"  {r['label']:<{width}}  {r['rate']:>9.0f} {r['unit']}")
        for c in (c for c in record["comparisons"] if c["size"] == size):
            figure = f"{c['ratio']:9.2f}" if c["ratio"] is not None else "  skipped"
            goal = f"   goal {c['goal']}" if c["goal"].startswith((">", "<")) else f"   ({c['goal']})"
            lines.append(f"  {'ratio ' + c['title']:<{width + 6}}  {figure}{goal}")
    for r in record.get("region_rows", []):
        mib = 1 << 20
        lines.append(f"\n-- region rows at max resolution {r['size']}: capacity {r['capacity'][0]}x{r['capacity'][1]}, "
                     f"{r['row_bytes']:,} B per sample ({r['ratio']:.2f}x two 224x224 views, {r['views_bytes']:,} B); "
                     f"batch {r['batch_size']}: {r['batch_bytes'] / mib:.0f} MiB, x{r['slots']} FFCV buffers: "
                     f"{r['host_bytes'] / mib:.0f} MiB host (pinned with CUDA) + {r['device_bytes'] / mib:.0f} MiB "
                     "device")
    if record["scaling"]:
        rows = record["scaling"]
        lines.append(f"\n-- scaling at max resolution {rows[0]['size']}: images/s (thread-ms per image)")
        for backend in dict.fromkeys(r["backend"] for r in rows):
            mine = [r for r in rows if r["backend"] == backend]
            for v in sorted({r["views"] for r in mine}):
                cells = [f"{r['threads']}t {r['images_per_s']:.0f} ({r['thread_ms_per_image']:.1f})"
                         for r in sorted(mine, key=lambda r: r["threads"]) if r["views"] == v]
                lines.append(f"  {backend} {v} view{'s' if v > 1 else ''}: " + ", ".join(cells))
    for item in record["skipped"]:
        lines.append(f"  skipped ({item.get('size', '')}) {item['what']}: {item['why']}")
    return "\n".join(lines)


def _figure(width_in: float, height_in: float, rows: int, cols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width_in, height_in), dpi=DPI, squeeze=False)
    return plt, fig, axes


def _save(plt, fig, path: Path, width_in: float, height_in: float) -> dict:
    """Write ``fig`` to ``path`` atomically (beside it, then renamed over it) and close it."""
    from ccrop_loaders.core.files import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")  # no bbox_inches="tight": the PNG is exactly the stated size
    finally:
        plt.close(fig)
    return {"path": path.name, "width": round(width_in * DPI), "height": round(height_in * DPI)}


def plot(record: dict, out: Path) -> dict:
    """Write ``bench.png`` (rates and ratios per size) and ``scaling.png``; returns ``{name: {path, width, height}}``
    (pixels). Without matplotlib, returns ``{}`` and the record says so."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        record.setdefault("skipped", []).append({"what": "charts", "why": "matplotlib is not installed"})
        return {}
    files = {}
    sizes = record["settings"]["sizes"]
    w, h = 15.0, 1.0 + 4.5 * len(sizes)
    plt, fig, axes = _figure(w, h, len(sizes), 2)
    for row, size in enumerate(sizes):
        results = [r for r in record["results"] if r["size"] == size]
        ax = axes[row][0]
        ax.barh(range(len(results)), [r["rate"] for r in results],
                color=[BACKEND_COLOURS.get(r["backend"], "k") for r in results])
        ax.set_yticks(range(len(results)), [f"{r['label'][:75]} [{r['unit']}]" for r in results], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("images per second (an image gives 'views' views)")
        ax.set_title(f".beton max resolution {size}: throughput", fontsize=10)
        comps = [c for c in record["comparisons"] if c["size"] == size] + [
            {"ratio": r["ratio"], "goal": "bytes", "title": "bytes/sample host->device: region row / two 224x224 views"}
            for r in record.get("region_rows", []) if r["size"] == size]
        ax = axes[row][1]
        ax.barh(range(len(comps)), [c["ratio"] or 0.0 for c in comps], color="tab:purple")
        ax.set_yticks(range(len(comps)), [c["title"][:62] for c in comps], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=0.8)
        for i, c in enumerate(comps):
            text = "skipped" if c["ratio"] is None else f"{c['ratio']:.2f}"
            ax.text(c["ratio"] or 0.0, i, f" {text}", va="center", fontsize=7)
            if c["goal"].startswith(">="):
                ax.plot([float(c["goal"][2:])] * 2, [i - 0.4, i + 0.4], color="tab:orange", lw=2)
        ax.set_xlabel("ratio (orange: goal)")
        ax.set_title(f".beton max resolution {size}: ratios", fontsize=10)
    fig.tight_layout()
    files["chart"] = _save(plt, fig, out / "bench.png", w, h)

    rows = record["scaling"]
    if rows:
        w, h = 13.0, 5.0
        plt, fig, axes = _figure(w, h, 1, 2)
        left, right = axes[0]
        for backend in dict.fromkeys(r["backend"] for r in rows):
            style = "-" if backend == "ffcv" else "--"
            mine = [r for r in rows if r["backend"] == backend]
            for v in sorted({r["views"] for r in mine}):
                line = sorted((r for r in mine if r["views"] == v), key=lambda r: r["threads"])
                if len(line) > 1:
                    left.plot([r["threads"] for r in line], [r["images_per_s"] for r in line], style, marker="o",
                              label=f"{backend}, {v} view{'s' if v > 1 else ''}")
            for t in sorted({r["threads"] for r in mine}):
                line = sorted((r for r in mine if r["threads"] == t), key=lambda r: r["views"])
                if len(line) > 1:
                    right.plot([r["views"] for r in line], [r["thread_ms_per_image"] for r in line], style,
                               marker="o", label=f"{backend}, {t} thread{'s' if t > 1 else ''}")
        for ax, key in ((left, "threads"), (right, "views")):
            ax.set_xscale("log", base=2)
            ticks = sorted({r[key] for r in rows})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        left.set_xlabel("threads")
        left.set_ylabel("images per second")
        left.set_title(f"throughput against threads (max resolution {rows[0]['size']})", fontsize=10)
        right.set_xlabel("views per image")
        right.set_ylabel("thread-milliseconds per image (threads / rate)")
        right.set_title("cost per image against views", fontsize=10)
        for ax in (left, right):
            if ax.lines:
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        files["scaling"] = _save(plt, fig, out / "scaling.png", w, h)
    return files
