"""Every reader of the read side, wired once per app onto one Redis and one Cassandra guard."""

from __future__ import annotations

from dataclasses import dataclass

import redis as _redis
from cassandra.cluster import Session

from core.settings import Settings
from serving.readers.base import Guard
from serving.readers.comments import CassandraComments
from serving.readers.engagement import CassandraEngagement, RedisEngagement
from serving.readers.freshness import Freshness, NoFreshness, RedisFreshness
from serving.readers.graph import CassandraGraph, Graph, RedisGraph
from serving.readers.items import CassandraItems, Items, RedisItems
from serving.readers.media import RedisMedia
from serving.readers.notifications import CassandraNotifications
from serving.readers.posts import CassandraPosts, Posts, RedisPosts
from serving.readers.profiles import CassandraProfiles, Profiles, RedisProfiles
from serving.readers.timeline import CassandraTimeline, RedisTimeline
from serving.readers.visibility import Visibility


@dataclass(frozen=True)
class Readers:
    """The read side's readers (composites pick Redis first, Cassandra when Redis is down)."""

    redis_timeline: RedisTimeline
    cassandra_timeline: CassandraTimeline
    posts: Posts
    profiles: Profiles
    items: Items
    graph: Graph
    visibility: Visibility
    freshness: Freshness
    comments: CassandraComments
    notifications: CassandraNotifications


def build(redis: Guard[_redis.Redis], cassandra: Guard[Session], settings: Settings) -> Readers:
    """Wire every reader onto the two engine guards (their breakers are shared by all readers)."""
    index = CassandraPosts(cassandra)
    redis_profiles, cassandra_profiles = RedisProfiles(redis, cassandra), CassandraProfiles(cassandra)
    graph = Graph(RedisGraph(redis, cassandra), CassandraGraph(cassandra))
    return Readers(
        redis_timeline=RedisTimeline(redis, cassandra, index, settings),
        cassandra_timeline=CassandraTimeline(cassandra),
        posts=Posts(RedisPosts(redis, cassandra), index),
        profiles=Profiles(redis_profiles, cassandra_profiles),
        items=Items(RedisItems(redis_profiles, RedisEngagement(redis, cassandra)),
                    CassandraItems(cassandra_profiles, CassandraEngagement(cassandra)),
                    RedisMedia(redis, settings.media_public_base)),
        graph=graph,
        visibility=Visibility(graph),
        freshness=Freshness(RedisFreshness(redis), NoFreshness()),
        comments=CassandraComments(cassandra),
        notifications=CassandraNotifications(cassandra),
    )
