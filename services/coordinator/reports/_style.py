"""The print stylesheet shared by both reports: A4, the Noto CJK families of Debian's fonts-noto-cjk, no URLs."""

from __future__ import annotations

SERIF = "Noto Serif CJK SC"
SANS = "Noto Sans CJK SC"
# The families the PDF renderer insists on; the generic names after them only serve a browser showing the HTML.
REQUIRED_FONT_FAMILIES = (SERIF, SANS)

STYLESHEET = f"""
@page {{
  size: A4;
  margin: 22mm 20mm 20mm 20mm;
  @bottom-center {{ content: "第 " counter(page) " 页 / 共 " counter(pages) " 页";
                    font-family: "{SANS}", sans-serif; font-size: 8.5pt; color: #555; }}
  @bottom-right {{ content: string(docref); font-family: "{SANS}", sans-serif; font-size: 8pt; color: #777; }}
}}
html {{ font-family: "{SERIF}", serif; font-size: 11pt; line-height: 1.6; color: #111; }}
body {{ margin: 0; }}
h1, h2, h3, th, .masthead, .meta, .level-badge {{ font-family: "{SANS}", sans-serif; }}
.docref {{ string-set: docref content(); }}
.masthead {{ text-align: center; color: #c00000; font-size: 30pt; font-weight: bold; letter-spacing: 0.3em;
             margin: 0 0 2mm 0; }}
.issue {{ text-align: center; font-size: 12pt; margin: 0 0 3mm 0; }}
.meta {{ display: flex; justify-content: space-between; font-size: 10pt; border-bottom: 2pt solid #c00000;
         padding-bottom: 2mm; margin-bottom: 5mm; }}
.restricted {{ color: #c00000; font-weight: bold; }}
h1 {{ font-size: 17pt; text-align: center; margin: 4mm 0 4mm 0; }}
h2 {{ font-size: 13pt; margin: 6mm 0 2mm 0; break-after: avoid; }}
p, li {{ margin: 1mm 0; text-align: justify; }}
ul, ol {{ margin: 1mm 0; padding-left: 7mm; }}
.cite {{ font-family: "{SANS}", sans-serif; font-size: 8pt; color: #555; white-space: nowrap; }}
.cite a {{ color: #1f4e9a; text-decoration: none; }}
.level-badge {{ display: inline-block; padding: 0.5mm 3mm; border-radius: 1mm; font-weight: bold; color: #fff; }}
.level-blue {{ background: #1f5fbf; }}
.level-yellow {{ background: #d4a300; color: #111; }}
.level-orange {{ background: #e0701b; }}
.level-red {{ background: #c00000; }}
table {{ width: 100%; border-collapse: collapse; margin: 2mm 0; font-size: 9.5pt; }}
th, td {{ border: 0.6pt solid #888; padding: 1mm 1.5mm; vertical-align: top; text-align: left; }}
th {{ background: #eee; font-weight: bold; }}
tr {{ break-inside: avoid; }}
td.num, th.num {{ text-align: right; white-space: nowrap; }}
.time {{ white-space: nowrap; }}
.post-text {{ white-space: pre-wrap; word-break: break-all; }}
.empty {{ color: #666; }}
.late {{ color: #c00000; font-weight: bold; }}
"""
