"""Apology service: Mau 04 drafts as DOCX and the officers inbox"""
