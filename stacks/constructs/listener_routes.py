"""The HTTPS listener's rules from the route table (cdk_app/routes.py): authenticate with Cognito, then forward.
Only /health skips sign-in."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, aws_elasticloadbalancingv2 as elbv2, aws_elasticloadbalancingv2_actions as elbv2_actions

from cdk_app.routes import ROUTES, SIGN_IN_SCOPE, SIGN_IN_SESSION_TIMEOUT_S, SignIn, Target
from stacks.constructs.auth import SignInUserPool

_UNAUTHENTICATED = {SignIn.AUTHENTICATE: elbv2.UnauthenticatedAction.AUTHENTICATE, SignIn.DENY: elbv2.UnauthenticatedAction.DENY}


def add_routes(
    listener: elbv2.ApplicationListener, sign_in: SignInUserPool, targets: Mapping[Target, elbv2.IApplicationTargetGroup]
) -> None:
    # One definition for this listener and the local ALB (cdk_app/routes.py): first match by priority wins.
    for route in ROUTES:
        conditions = [elbv2.ListenerCondition.path_patterns(list(route.paths))]
        if route.methods:
            conditions.append(elbv2.ListenerCondition.http_request_methods(list(route.methods)))
        target = targets[route.target]
        action = (
            elbv2.ListenerAction.forward([target])
            if route.sign_in is SignIn.NONE
            else _signed_in(sign_in, target, _UNAUTHENTICATED[route.sign_in])
        )
        listener.add_action(route.name, priority=route.priority, conditions=conditions, action=action)


def _signed_in(
    sign_in: SignInUserPool, target: elbv2.IApplicationTargetGroup, on_unauthenticated: elbv2.UnauthenticatedAction
) -> elbv2.ListenerAction:
    return elbv2_actions.AuthenticateCognitoAction(
        user_pool=sign_in.user_pool,
        user_pool_client=sign_in.alb_client,
        user_pool_domain=sign_in.domain,
        on_unauthenticated_request=on_unauthenticated,
        session_timeout=Duration.seconds(SIGN_IN_SESSION_TIMEOUT_S),
        scope=SIGN_IN_SCOPE,
        next=elbv2.ListenerAction.forward([target]),
    )
