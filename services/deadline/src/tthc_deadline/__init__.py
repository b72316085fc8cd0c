"""Deadline service: due dates on the working calendar, at-risk and overdue"""
