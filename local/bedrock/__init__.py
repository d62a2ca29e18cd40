"""A LOCAL STAND-IN for the Bedrock runtime's Converse API, not AWS: the model of `make demo` and of the agent's tests.

The agent reaches it with its unchanged boto3 code through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, so
the request and response shapes are botocore's (`POST /model/<modelId>/converse`). `DemoModel`
answers by rules (`rules.py`: the demo API's tools for plain requests, one sentence per tool
result); `BedrockStandIn` is the same server answering like a model that always uses one tool. With
`BEDROCK_MODEL_ID` and AWS credentials set, `make demo` uses the real model instead and this
stand-in is not started.

Both answer from their `script` first: response bodies, functions of the request, or AWS error codes,
sent in the AWS JSON shape (`x-amzn-errortype`) so botocore raises its usual exceptions.
"""

from local.bedrock.responses import text_response, tool_use_response
from local.bedrock.rules import answer, choose_tool, describe_result
from local.bedrock.server import BedrockStandIn, DemoModel, Script

__all__ = ["BedrockStandIn", "DemoModel", "Script", "answer", "choose_tool", "describe_result", "text_response", "tool_use_response"]
