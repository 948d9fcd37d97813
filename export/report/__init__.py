"""The sign-off report: teacher against student, in every format, with budgets.

    build    export every model, measure every runtime, compare (the report dict)
    variants the candidates' deployable variants: exported, verified, lineage
    compare  ratios, the NumPy floor, held-out parity, Pareto fronts
    render   Markdown, HTML and JSON of a report; atomic writes
    tables   the comparison tables (cells: cell formatting; variant_tables: per
             variant), rendered alike to Markdown and HTML
    plots    latency distributions; accuracy against p99 and size (Pareto fronts)
    budgets  release limits (YAML/JSON) checked against a report's results
    choose   the Pareto fronts, the budget's release and the release folder
    layer_errors  per-layer int8 quantisation error; the selective int8 variant
    command  `python -m export.report`: flags, exit status

Example:

```python
from export import report

result = report.build_report("teacher.keras", "student.keras", "out/",
                             budget=report.load_budget("budget.yaml"))
report.write_report(result, "out/")
```
"""

from export.report.budgets import BudgetError
from export.report.budgets import check_budget
from export.report.budgets import load_budget
from export.report.budgets import parse_budget
from export.report.build import FORMATS
from export.report.build import build_report
from export.report.choose import choose_release
from export.report.choose import pareto_front
from export.report.choose import write_release
from export.report.command import exit_status
from export.report.command import main
from export.report.render import render_html
from export.report.render import render_markdown
from export.report.render import to_json
from export.report.render import write_report
from export.report.tables import tables
from export.report.variants import VARIANTS
