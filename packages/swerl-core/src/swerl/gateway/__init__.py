"""The swerl gateway: where every trained token is captured, exactly as it was sampled.

Agents speak OpenAI chat (through LiteLLM); the policy speaks token ids. The gateway sits between
them: it renders prompts with the model's chat template, calls the policy backend token-in /
token-out, parses tool calls, and stitches each trial's turns into training samples (see
``session.py``). Modules: ``server`` (the aiohttp app, ``swerl gateway``), ``session``
(stitching and records), ``render`` (normalisation and chat template), ``parsers`` (tool-call
formats), ``backend`` (the policy backend interface and vLLM's HTTP one), ``openai`` (response
and SSE bodies), ``settings``.

Nothing heavy is imported here: transformers loads only when a gateway starts.
"""
