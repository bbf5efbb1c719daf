"""A push: the request, what skopeo reads, the copy with retries and checks, and its real
progress.
"""
