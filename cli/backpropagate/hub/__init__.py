"""Publishing to the Hugging Face Hub: what to push (target.py), its model card (card.py), the upload (push.py)."""
