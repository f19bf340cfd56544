-- One row per erasure request: when it was asked for, in how many stores it was carried out, how much was
-- removed, and whether it finished within the SLA (var erasure_sla_hours, 72 h). No personal data: the
-- subject is known by its hash only.
with

requests as (

    select * from {{ ref('stg_control__erasure_requests') }}

),

erasures as (

    select * from {{ ref('stg_control__erasures') }}

),

per_request as (

    select
        request_id,
        -- a cast counts as a plain column to sqlfluff (ST06)
        cast(sum(erased_count) as bigint) as erased_count,
        max(subject_type) as subject_type,
        max(subject_hash) as subject_hash,
        count(distinct store) as stores_erased,
        min(started_at) as first_started_at,
        max(finished_at) as last_finished_at

    from erasures
    group by request_id

),

spine as (

    select request_id from requests
    union
    select request_id from per_request

),

joined as (

    select
        spine.request_id,
        requests.requested_at,
        requests.status as request_status,
        per_request.first_started_at,
        per_request.last_finished_at as last_store_finished_at,
        coalesce(requests.subject_type, per_request.subject_type) as subject_type,
        coalesce(requests.subject_hash, per_request.subject_hash) as subject_hash,
        coalesce(per_request.stores_erased, 0) as stores_erased,
        coalesce(per_request.erased_count, 0) as erased_count,
        -- a request in control/erasure_requests is finished when it says so (verified); one only in the
        -- log, when its last store was
        case
            when requests.request_id is not null then requests.finished_at
            else per_request.last_finished_at
        end as finished_at

    from spine
    left join requests
        on spine.request_id = requests.request_id
    left join per_request
        on spine.request_id = per_request.request_id

),

final as (

    select
        *,
        {{ seconds_between('requested_at', 'finished_at') }} / 3600.0 as hours_to_erase,
        case
            when requested_at is null or finished_at is null then null
            else {{ seconds_between('requested_at', 'finished_at') }} <= {{ var('erasure_sla_hours') }} * 3600
        end as is_within_sla

    from joined

)

select * from final
