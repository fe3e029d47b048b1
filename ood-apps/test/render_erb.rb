#!/usr/bin/env ruby
# frozen_string_literal: true

# Renders one ERB file of an OOD batch-connect app with the binding the Open OnDemand dashboard
# gives that kind of file, for the tests (OOD 4.x, apps/dashboard/app/models/batch_connect/
# app.rb, session.rb, session_context.rb, views/batch_connect/sessions/connections/_custom.html.erb):
#
#   form      form.yml.erb   no binding of its own (ERB#result(nil)); the result is YAML
#   submit    submit.yml.erb an OpenStruct of the form values plus staged_root, as plain names
#   template  template/*.erb `session` and `context`; context answers each form value (a string)
#   view      view.html.erb  an OpenStruct of connection.yml (loaded with YAML.safe_load)
#   info      info.md.erb    the session object itself (user_context, running?, connect, staged_root)
#   yaml      -              loads text with YAML.safe_load, as OOD loads its YAML, and prints JSON
#
# OOD compiles every file with ERB.new(text, trim_mode: '-'). Reads one JSON request on stdin;
# prints the result on stdout; on an error prints "Class: message" on stderr and exits 1.

require 'erb'
require 'json'
require 'ostruct'
require 'pathname'
require 'yaml'

# What `context` is in template/*.erb: each form attribute answers its value by name.
class FormContext
  def initialize(values)
    @values = values.transform_keys(&:to_s)
  end

  def method_missing(name, *args)
    key = name.to_s
    return super unless args.empty? && @values.key?(key)

    @values[key]
  end

  def respond_to_missing?(name, include_private = false)
    @values.key?(name.to_s) || super
  end
end

# What `session` is in template/*.erb: the few attributes an app can reasonably use.
SessionStub = Struct.new(:id, :staged_root, :cluster_id, :token, :title, keyword_init: true)

TemplateBinding = Struct.new(:session, :context) do
  def get_binding # OOD's name for it
    binding
  end
end

# What info.md.erb is bound to: the session, whose connect fails until connection.yml exists.
class InfoSession
  def initialize(staged_root:, user_context:, running:)
    @staged_root = Pathname.new(staged_root)
    @user_context = user_context
    @running = running
  end

  attr_reader :staged_root, :user_context

  def running?
    @running
  end

  def connect
    OpenStruct.new(YAML.safe_load(staged_root.join('connection.yml').read))
  end

  def info_binding
    binding
  end
end

def form_values(request)
  request.fetch('context', {}).transform_values(&:to_s)
end

def submit_binding(request)
  values = form_values(request).transform_keys(&:to_sym)
  clash = OpenStruct.new.methods & values.keys
  raise ArgumentError, "#{clash.inspect} cannot be form item names" unless clash.empty?

  OpenStruct.new(values.merge(staged_root: Pathname.new(request.fetch('staged_root', '/tmp/staged')))).instance_eval { binding }
end

def template_binding(request)
  session = request.fetch('session', {})
  stub = SessionStub.new(
    id: session.fetch('id', '00000000-0000-0000-0000-000000000000'),
    staged_root: Pathname.new(session.fetch('staged_root', '/tmp/staged')),
    cluster_id: session.fetch('cluster_id', 'localhost'),
    token: 'sys/microscope',
    title: 'Microscope'
  )
  TemplateBinding.new(stub, FormContext.new(form_values(request))).get_binding
end

def view_binding(request)
  connection = if request.key?('connection_file')
                 YAML.safe_load(File.read(request.fetch('connection_file')))
               else
                 request.fetch('connection')
               end
  OpenStruct.new(connection).instance_eval { binding }
end

def info_binding(request)
  InfoSession.new(
    staged_root: request.fetch('staged_root'),
    user_context: request.fetch('user_context', {}),
    running: request.fetch('running', false)
  ).info_binding
end

def render(request)
  file = request.fetch('file')
  erb = ERB.new(File.read(file, encoding: 'UTF-8'), trim_mode: '-')
  erb.filename = file
  case request.fetch('kind')
  when 'form' then erb.result(nil)
  when 'submit' then erb.result(submit_binding(request))
  when 'template' then erb.result(template_binding(request))
  when 'view' then erb.result(view_binding(request))
  when 'info' then erb.result(info_binding(request))
  else raise ArgumentError, "unknown kind #{request['kind'].inspect}"
  end
end

begin
  request = JSON.parse($stdin.read)
  if request['kind'] == 'yaml'
    puts JSON.generate(YAML.safe_load(request.fetch('text')))
  else
    print render(request)
  end
rescue StandardError, ScriptError => e
  warn "#{e.class}: #{e.message}"
  exit 1
end
