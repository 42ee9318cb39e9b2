"""A catalogue CSV in the full published layout, generated from the sample (for tests and the benchmark).

The published file has 31 columns, HTML inside text fields, embedded newlines and a few duplicate ids; rows whose id
is empty are keyed by their url. This generator reproduces those quirks from the sample's rows.
"""

from __future__ import annotations

import csv
import io
import random

from classifier.catalog import sample_csv_path

FULL_COLUMNS = [
    "id", "nombre_tramite", "institucion_nombre", "url", "ques_es", "requisitos_generales", "tiene_costo", "valor",
    "canales_de_atencion", "email_de_consulta", "dependencia", "temas", "como_se_hace_en_linea",
    "como_se_hace_presencial", "como_se_hace_telefonico", "donde_se_realiza", "horarios", "telefono", "direccion",
    "departamento", "informacion_complementaria", "otros_datos", "normativa", "tiempo_estimado", "publico_objetivo",
    "formularios", "fecha_actualizacion", "estado", "vigente_desde", "palabras_clave", "codigo_tramite",
]  # fmt: skip


def sample_rows() -> list[dict[str, str]]:
    with open(sample_csv_path(), encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _htmlize(text: str, rng: random.Random) -> str:
    if not text:
        return text
    sentences = [s for s in text.split(". ") if s]
    if rng.random() < 0.5:
        return "".join(f"<p>{s}.</p>\n" for s in sentences)
    items = "".join(f"\n  <li>{s} &amp; m&aacute;s</li>" for s in sentences)
    return f"<ul>{items}\n</ul>"


def full_layout_rows(n: int, seed: int = 0, duplicates: int = 5) -> list[dict[str, str]]:
    """``n`` rows in the full layout: HTML in text fields, newlines, ``duplicates`` repeated ids, some empty ids."""
    rng = random.Random(seed)
    base = sample_rows()
    rows: list[dict[str, str]] = []
    for i in range(n):
        src = base[i % len(base)]
        copy = i // len(base)
        row = {c: "" for c in FULL_COLUMNS}
        row.update({k: v for k, v in src.items() if k in row})
        if copy:
            row["nombre_tramite"] = f"{src['nombre_tramite']} ({copy + 1})"
            row["id"] = str(100000 + i) if src["id"] or rng.random() < 0.5 else ""
            row["url"] = f"{src['url']}-{copy + 1}"
        row["ques_es"] = _htmlize(src["ques_es"], rng)
        row["requisitos_generales"] = _htmlize(src["requisitos_generales"], rng)
        row["canales_de_atencion"] = src["canales_de_atencion"].replace("; ", ";\n")
        row["horarios"] = "Lunes a viernes\nde 9:00 a 17:00"
        row["direccion"] = "Av. 18 de Julio 1234,\nMontevideo"
        row["fecha_actualizacion"] = f"2023-05-0{1 + i % 9}"
        row["estado"] = "Publicado"
        rows.append(row)
    ids = [r for r in rows if r["id"]]
    for r in rng.sample(ids, min(duplicates, len(ids))):
        dup = dict(r)
        dup["ques_es"] = ""  # the duplicate carries less: the loader keeps the first row and fills its gaps
        rows.append(dup)
    return rows


def full_layout_csv(n: int, seed: int = 0, duplicates: int = 5) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FULL_COLUMNS, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(full_layout_rows(n, seed, duplicates))
    return "\ufeff" + out.getvalue()
