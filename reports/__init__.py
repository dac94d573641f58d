"""Reports a reviewer signs: the monthly PDF in Chinese, the yearly carbon disclosure and the
self-evaluation figures (PDF and Excel).

Pure document building (:mod:`reports.document`) is separate from rendering
(:mod:`reports.render`: Jinja2 HTML/CSS -> WeasyPrint PDF with the Noto CJK fonts embedded;
:mod:`reports.charts`: matplotlib charts drawn as vector paths, so no font is needed to show
them; :mod:`reports.excel`: openpyxl workbooks). Every number printed comes from the document
model, so a test can compare the PDF's text with the figures that went in.
"""
