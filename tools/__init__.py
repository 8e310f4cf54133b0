"""The course's tools, beside the package: ``make course`` (runner), ``make bench`` (bench), ``make data`` (tinyworld).

Tools import ``course_utils``; ``course_utils`` and the notebooks never import a tool.
"""
