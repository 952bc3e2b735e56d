"""Mutual recognition (检查检验结果互认): the rules, $recognize, $duplicate-check, marks, events, statistics."""
